"""The evaluation entry point :func:`run_evaluation` (one task; :mod:`.suite` runs every task with data).

Both are plain Python functions; the ``vila-m3 evaluate`` verb and the bundles' ``configs/evaluate.json`` call them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.runner import DistContext, gather_dict, generate_answers, init_distributed, write_answers
from vila_m3_core.evaluation.scoring import classification_inputs, predictions_of, score_task
from vila_m3_core.evaluation.summary import plot_per_class, render_summary
from vila_m3_core.evaluation.tasks import EvalItem, TaskSpec, build_items, get_task, read_records
from vila_m3_core.evaluation.tracking import log_to_mlflow, resolve_tracking_uri

logger = logging.getLogger(__name__)

REPORT_SAMPLING = {"temperature": 0.2}  # the reference's report generation (inference.py defaults)
EXPERT_MODES = ("none", "expert", "agent")


def _expert_mode(with_expert: bool | str) -> str:
    """Normalise ``with_expert``: False/"none" -> "none"; True/"expert"/"file"/"live" -> "expert"; "agent"."""
    if with_expert in (False, None, "none", "false", "False", ""):
        return "none"
    if with_expert in (True, "expert", "file", "live", "true", "True"):
        return "expert"
    if with_expert == "agent":
        return "agent"
    raise VilaM3Error(f"with_expert must be false, true (expert text) or 'agent', not {with_expert!r}.")


def run_evaluation(
    task: str,
    data: str | Path,
    image_root: str | Path | None,
    model_path: str,
    output_dir: str | Path,
    conv_mode: str | None = None,
    batch_size: int = 8,
    with_expert: bool | str = False,
    tracking: str | None = None,
    *,
    expert_predictions: str | Path | None = None,
    report_sampling: bool = False,
    max_new_tokens: int | None = None,
    generation: dict[str, Any] | None = None,
    clean_reports: bool = True,
    green_model: str | None = None,
    green_batch_size: int = 8,
    green_max_new_tokens: int | None = None,
    pathvqa_pkl: str | Path | None = None,
    single_pred_prompt: bool | None = None,
    tokenizer: str = "auto",
    meteor: bool | None = None,
    limit: int | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    revision: str | None = None,
    vlm: Any = None,
    expert: Any = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Run one benchmark end to end: generate (batched, resumable, sharded), score, write the outputs.

    Args:
        task: one of ``radvqa, slake, pathvqa, mimicvqa, report_mimic, report_iu, chestxray14, chexpert``.
        data: records file (JSON list or JSONL) from ``data_prepare``.
        image_root: folder the records' ``image`` paths are relative to (``None``: paths as written).
        model_path: VILA-M3 checkpoint folder or Hub repo id.
        output_dir: receives ``answers.jsonl``, ``results.json``, ``summary.md``, ``per_class.png``.
        conv_mode: conversation template (default: the checkpoint's).
        batch_size: requests per generation batch.
        with_expert: ``False``; ``True`` = CXR expert text in the prompt as the reference eval (classification and
            report tasks; from ``expert_predictions`` or computed on the fly); ``"agent"`` = the model selects the
            expert itself through :class:`vila_m3_core.agent.Agent`.
        tracking: ``None``; ``"mlflow"`` (``sqlite:///<output_dir>/mlruns.db``) or an MLflow tracking URI
            (``sqlite:///...`` or ``http(s)://...``) to log parameters and metrics.
        expert_predictions: CXR ensemble predictions (JSON file image -> scores, or folder of per-image JSONs).
        report_sampling: report tasks sample at temperature 0.2 as the reference did (default greedy).
        max_new_tokens: override the task's generation budget (1024 VQA, 512 report/classification).
        generation: further generation keyword arguments (``min_new_tokens``, ``num_beams``, ``top_p``, ...) that
            override the task's settings (recorded in ``results.json``).
        clean_reports: apply the reference's cleaning to generated reports before scoring (as published).
        green_model: GREEN judge (Hub id such as ``StanfordAIMI/GREEN-radllama2-7b`` or a local folder) for report
            tasks; ``None`` skips GREEN. ``green_batch_size``: judge batch; ``green_max_new_tokens``: cap on the
            judge's answer (``None`` = the protocol's 2048-token budget).
        pathvqa_pkl: the original ``test_vqa.pkl`` to join PathVQA answers on ``question_id`` (reference scoring).
        single_pred_prompt: override the VQA ``--single-pred-prompt`` suffix (default: the reference setting).
        tokenizer, meteor: report-metric options (see :func:`~.metrics.report.report_scores`).
        limit: evaluate only the first ``limit`` records (smoke runs).
        seed: sampling seed (report sampling only).
        device, dtype, revision: model loading options.
        vlm: an already loaded model (anything with ``generate_batch``/``generate``); skips loading.
        expert: a ready CXR expert for the live expert / agent modes.
        run_name: name in the summary and MLflow (default: the task, plus ``+expert``/``+agent``).

    Returns:
        The ``results.json`` content: task, model, settings, ``metrics`` (fractions; the summary shows x100),
        counts and timing. Every rank of a distributed run returns the same dict; only rank 0 writes files.
    """
    spec = get_task(task)
    mode = _expert_mode(with_expert)
    if mode != "none" and spec.kind not in ("classification", "report"):
        raise VilaM3Error(f"with_expert applies to classification and report tasks, not {task}.")
    tracking_uri = resolve_tracking_uri(tracking, output_dir)
    if single_pred_prompt is not None:
        spec = TaskSpec(**{**spec.__dict__, "single_pred_prompt": bool(single_pred_prompt)})
    ctx = init_distributed()
    out_dir = Path(output_dir)
    items = build_items(spec, read_records(data), image_root)
    pathvqa_refs = None
    if spec.kind == "pathvqa":
        items, pathvqa_refs = _pathvqa_subset(items, pathvqa_pkl)
    if limit is not None:
        items = items[: int(limit)]
    gen: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": int(max_new_tokens or spec.max_new_tokens)}
    if spec.kind == "report" and report_sampling:
        gen.update(REPORT_SAMPLING, seed=seed)
    gen.update(generation or {})
    if vlm is None:
        vlm = _load_vlm(model_path, conv_mode, device, dtype, revision, ctx)
    scores = None
    if mode == "expert":  # each rank scores its own share (the live expert runs 8 networks), then all share all
        scores = gather_dict(_expert_scores(items[ctx.rank :: ctx.world_size], expert_predictions, expert), ctx)
    build, answer = _request_functions(spec, mode, vlm, gen, scores, expert, expert_predictions, out_dir, conv_mode)
    answers, timing = generate_answers(items, build, answer, out_dir, batch_size=batch_size, ctx=ctx)
    green_outputs = None
    if green_model and spec.kind == "report":  # the judge runs on every rank, like the generation
        green_outputs = _green_judge_outputs(items, answers, green_model, green_batch_size, green_max_new_tokens,
                                             clean_reports, device, ctx)  # fmt: skip
    results: list[Any] = [None]
    failure: BaseException | None = None
    if ctx.is_main:
        try:
            results = [
                _score_and_write(
                    spec, items, answers, timing, ctx, out_dir, tracking_uri, vlm, scores, pathvqa_refs, green_outputs,
                    run_name or task + ("" if mode == "none" else f"+{mode}"),
                    {"task": task, "model_path": str(model_path), "conv_mode": conv_mode, "with_expert": mode,
                     "generation": gen, "batch_size": batch_size, "data": str(data)},
                    {"clean_reports": clean_reports, "tokenizer": tokenizer, "meteor": meteor},
                )
            ]  # fmt: skip
        except BaseException as err:  # other ranks must not wait forever for the broadcast below
            failure, results = err, [{"error": f"{type(err).__name__}: {err}"}]
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.broadcast_object_list(results, src=0)
    if failure is not None:
        raise failure
    if "error" in results[0]:
        raise VilaM3Error(f"Scoring failed on rank 0: {results[0]['error']}")
    return results[0]


def _score_and_write(
    spec: TaskSpec,
    items: list[EvalItem],
    answers: dict[str, Any],
    timing: dict[str, float],
    ctx: DistContext,
    out_dir: Path,
    tracking_uri: str | None,
    vlm: Any,
    scores: dict[str, Any] | None,
    pathvqa_refs: dict[str, str] | None,
    green_outputs: dict[str, tuple[str, str]] | None,
    run_name: str,
    settings: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """Rank 0: write answers.jsonl, score, and write results.json / summary.md / the plot (and MLflow)."""
    write_answers(out_dir, items, answers)
    metrics = score_task(spec, items, answers, pathvqa_refs, options["clean_reports"], options["tokenizer"],
                         options["meteor"])  # fmt: skip
    if scores is not None and spec.kind == "classification":
        metrics["expert_alone"] = _expert_alone(spec, items, scores)
    if green_outputs is not None:
        metrics.update(_green_summary(items, green_outputs, out_dir))
    generated = timing["generated"]
    mode = settings["with_expert"]
    result = {
        "task": settings["task"],
        "run_name": run_name,
        "model": Path(settings["model_path"]).name or settings["model_path"],
        "model_path": settings["model_path"],
        "conv_mode": settings["conv_mode"] or getattr(vlm, "conv_mode", None),
        "with_expert": mode if mode != "none" else ("records" if _experts_in_records(items) else False),
        "generation": settings["generation"],
        "batch_size": settings["batch_size"],
        "world_size": ctx.world_size,
        "data": settings["data"],
        "n_items": len(items),
        "metrics": metrics,
        "timing": {**timing, "records_per_second": generated / timing["seconds"] if timing["seconds"] else 0.0},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_outputs(out_dir, [result])
    if tracking_uri:
        log_to_mlflow(tracking_uri, result, out_dir)
    return result


def _experts_in_records(items: list[EvalItem]) -> bool:
    """True when the records themselves carry expert text (data_prepare's with-expert classification files)."""
    return any(item.meta.get("expert") == "in_record" for item in items)


def _write_outputs(out_dir: Path, runs: list[dict[str, Any]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = runs[0] if len(runs) == 1 else {"runs": runs}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (out_dir / "summary.md").write_text(render_summary(runs))
    plot_per_class(runs, out_dir / "per_class.png")


def _pathvqa_subset(items: list[EvalItem], pkl: str | Path | None) -> tuple[list[EvalItem], dict[str, str] | None]:
    """Keep the scored yes/no questions only (the reference generated all but scored these)."""
    if pkl is not None:
        from vila_m3_core.evaluation.metrics.pathvqa import load_pathvqa_pickle

        refs = load_pathvqa_pickle(pkl)
        kept = [i for i in items if i.id in refs]
        unmatched = len(refs) - len(kept)
        if unmatched:
            logger.warning("pathvqa: %d yes/no questions of the pickle have no record (scored as wrong)", unmatched)
        return kept, refs
    kept = [i for i in items if i.meta.get("answer_type") == "closed"]
    logger.info("pathvqa: %d yes/no questions scored, %d open questions skipped", len(kept), len(items) - len(kept))
    return kept, None


def _rank_device(device: str, ctx: DistContext) -> str:
    """``auto`` on a multi-process run means this rank's GPU (``cuda:<local_rank>``) or the CPU."""
    if ctx.world_size > 1 and device == "auto":
        import torch

        return f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu"
    return device


def _load_vlm(model_path: str, conv_mode: str | None, device: str, dtype: str, revision: str | None, ctx: DistContext):
    from vila_m3_core.model import VilaM3

    device = _rank_device(device, ctx)
    return VilaM3.from_pretrained(model_path, revision=revision, dtype=dtype, device=device, conv_mode=conv_mode)


def _expert_scores(items: list[EvalItem], predictions: str | Path | None, expert: Any) -> dict[str, Any]:
    from vila_m3_core.evaluation.expert_inputs import ExpertScores

    return ExpertScores(predictions, expert).scores_for(items)


def _request_functions(
    spec: TaskSpec,
    mode: str,
    vlm: Any,
    gen: dict[str, Any],
    scores: dict[str, Any] | None,
    expert: Any,
    expert_predictions: str | Path | None,
    out_dir: Path,
    conv_mode: str | None,
):
    """The (build_request, answer) pair for the runner, per expert mode."""
    from vila_m3_core.model import GenerationRequest

    conv = {"conv_mode": conv_mode} if conv_mode else {}
    if mode == "agent":
        from vila_m3_core.agent import Agent

        if expert is None and expert_predictions is not None:
            from vila_m3_core.evaluation.expert_inputs import PrecomputedCXRExpert

            expert = PrecomputedCXRExpert(expert_predictions)
        experts = {"CXR": expert} if expert is not None else None
        agent = Agent(vlm, experts, output_dir=out_dir / "agent_outputs", generation=gen)

        def answer_agent(requests: list[EvalItem]) -> list[tuple[str, dict[str, Any]]]:
            out = []
            for item in requests:
                agent.reset()
                result = agent.ask(item.images[0], item.question, modality="CXR")
                out.append((result.text, {"mode": "agent", "trace": result.trace.to_dict()}))
            return out

        return (lambda item: item), answer_agent

    def build(item: EvalItem) -> tuple[Any, dict[str, Any]]:
        if mode == "expert":
            return _expert_request(spec, item, scores or {})
        return GenerationRequest(item.prompt, tuple(item.images)), {}

    def answer(requests: list[tuple[Any, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        texts = vlm.generate_batch([r for r, _ in requests], batch_size=max(1, len(requests)), **conv, **gen)
        return [(text, extra) for text, (_, extra) in zip(texts, requests, strict=True)]

    return build, answer


def _expert_request(spec: TaskSpec, item: EvalItem, scores: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from vila_m3_core.evaluation.expert_inputs import classification_expert_prompt, report_expert_turns
    from vila_m3_core.experts.cards import render_model_cards
    from vila_m3_core.model import GenerationRequest

    table = scores.get(item.id)
    if table is None:  # no predictions for this image: asked without expert text, flagged in its answer line
        return GenerationRequest(item.prompt, tuple(item.images)), {"expert": "missing"}
    if spec.kind == "classification":
        prompt = classification_expert_prompt(item.meta["class_name"], table)
        return GenerationRequest(prompt, tuple(item.images)), {"prompt": prompt, "expert": "text"}
    turns = report_expert_turns(item.images[0], table, render_model_cards())
    return GenerationRequest(turns), {"prompt": [t.text for t in turns], "expert": "text"}


def _expert_alone(spec: TaskSpec, items: list[EvalItem], scores: dict[str, Any]) -> dict[str, Any]:
    from vila_m3_core.evaluation.expert_inputs import expert_alone_predictions
    from vila_m3_core.evaluation.metrics.classification import classification_scores

    y_true, _ = classification_inputs(items, {})
    preds, probs = expert_alone_predictions(items, scores)
    classes = [c for c in spec.classes if c in y_true]
    return classification_scores(y_true, preds, classes, scores=probs)


def _green_judge_outputs(
    items: list[EvalItem],
    answers: dict[str, Any],
    green_model: str,
    batch_size: int,
    max_new_tokens: int | None,
    clean: bool,
    device: str,
    ctx: DistContext,
) -> dict[str, tuple[str, str]]:
    """Run the GREEN judge on this rank's share of the pairs (every rank loads the judge; rank ``r`` takes pairs
    ``r, r+N, ...``) and gather ``{question_id: (candidate, judge answer)}``. Pairs with an empty reference are
    skipped (as VILA-M3's driver)."""
    from vila_m3_core.evaluation.metrics.cleaning import clean_report
    from vila_m3_core.evaluation.metrics.green import GreenJudge

    preds = predictions_of(answers)
    scored = [item for item in items if item.reference.strip()]
    mine = scored[ctx.rank :: ctx.world_size]
    candidates = [preds.get(item.id, "") for item in mine]
    if clean:
        candidates = [clean_report(c) for c in candidates]
    outputs: dict[str, tuple[str, str]] = {}
    if mine:
        judge = GreenJudge.from_pretrained(green_model, device=_rank_device(device, ctx))
        judged = judge.judge([item.reference for item in mine], candidates, batch_size, max_new_tokens)
        outputs = {item.id: (cand, out) for item, cand, out in zip(mine, candidates, judged, strict=True)}
    return gather_dict(outputs, ctx)


def _green_summary(items: list[EvalItem], outputs: dict[str, tuple[str, str]], out_dir: Path) -> dict[str, Any]:
    """Rank 0: parse the judge answers, write ``green.jsonl`` and return ``green`` plus ``green_details``."""
    from vila_m3_core.evaluation.metrics.green import green_pair_score, parse_judge_output, summarize_green

    parses = []
    with (out_dir / "green.jsonl").open("w", encoding="utf-8") as sink:
        for item in items:
            if item.id not in outputs:
                continue
            candidate, judge_output = outputs[item.id]
            parsed = parse_judge_output(judge_output)
            parses.append(parsed)
            line = {"question_id": item.id, "score": green_pair_score(parsed), **asdict(parsed)}
            sink.write(json.dumps({**line, "candidate": candidate, "judge_output": judge_output}) + "\n")
    summary = summarize_green(parses)
    summary["n_skipped_empty_reference"] = sum(1 for item in items if not item.reference.strip())
    return {"green": summary.pop("green"), "green_details": summary}
