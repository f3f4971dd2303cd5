"""Score a task's answers with the metric functions; the result feeds ``results.json``, the summary and the plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vila_m3_core.evaluation.metrics.classification import classification_scores, parse_yes_no
from vila_m3_core.evaluation.metrics.mimicvqa import MimicVqaItem, mimicvqa_scores
from vila_m3_core.evaluation.metrics.pathvqa import pathvqa_scores
from vila_m3_core.evaluation.metrics.report import report_scores
from vila_m3_core.evaluation.metrics.vqa import vqa_scores
from vila_m3_core.evaluation.tasks import EvalItem, TaskSpec

#: The metric shown in the seed tables for each task kind (key in the metrics dict).
HEADLINE = {
    "vqa": "accuracy",
    "pathvqa": "accuracy",
    "mimicvqa": "wavg_closed",
    "report": "BLEU_4",
    "classification": "f1",
}


def predictions_of(answers: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{question_id: text}`` of the answers that did not fail (failed ones count as missing)."""
    return {qid: str(a["text"]) for qid, a in answers.items() if "error" not in a}


def score_task(
    task: TaskSpec,
    items: Sequence[EvalItem],
    answers: Mapping[str, Mapping[str, Any]],
    pathvqa_references: Mapping[str, str] | None = None,
    clean_reports: bool = True,
    tokenizer: str = "auto",
    meteor: bool | None = None,
) -> dict[str, Any]:
    """Metrics of ``task`` over ``items`` (missing or failed answers score as wrong/empty and are counted).

    Returns the metric dict of the task's metric function plus ``"per_class"``: a flat ``{label: fraction}`` used
    for the bar plot (answer types, question types, classes, or the report metrics).
    """
    preds = predictions_of(answers)
    if task.kind == "vqa":
        refs = {i.id: i.reference for i in items}
        out: dict[str, Any] = vqa_scores(refs, preds, {i.id: i.meta.get("answer_type") for i in items})
        out["per_class"] = {"closed": out["closed_accuracy"], "open (recall)": out["open_recall"]}
    elif task.kind == "pathvqa":
        refs = dict(pathvqa_references) if pathvqa_references is not None else {
            i.id: i.reference.strip().lower() for i in items if i.meta.get("answer_type") == "closed"
        }  # fmt: skip
        out = pathvqa_scores(refs, preds)
        out["per_class"] = {"yes/no": out["accuracy"]}
    elif task.kind == "mimicvqa":
        out = mimicvqa_scores(
            MimicVqaItem(i.meta["question_type"], i.meta["answer_type"], i.reference, preds.get(i.id, ""))
            for i in items
        )
        out["per_class"] = {
            f"{qtype} ({kind})": values[kind]
            for qtype, values in out["per_type"].items()
            for kind in ("closed", "open")
            if values[f"n_{kind}"]
        }
    elif task.kind == "report":
        out = report_scores(
            {i.id: i.reference for i in items}, preds, clean_predictions=clean_reports, tokenizer=tokenizer,
            meteor=meteor,
        )  # fmt: skip
        out["per_class"] = {
            k: out[k] for k in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "METEOR") if k in out
        }
    elif task.kind == "classification":
        out = _classification(task, items, preds)
        out["per_class"] = {cls: v["f1"] for cls, v in out["per_class"].items()}
    else:  # pragma: no cover - TaskSpec kinds are fixed
        raise ValueError(task.kind)
    out["headline"] = HEADLINE[task.kind]
    out["n_failed"] = sum(1 for a in answers.values() if "error" in a)
    return out


def classification_inputs(
    items: Sequence[EvalItem], preds: Mapping[str, str]
) -> tuple[dict[str, list[int]], dict[str, list[int | None]]]:
    """Labels and parsed yes/no predictions per class (missing answers are unparseable)."""
    y_true: dict[str, list[int]] = {}
    y_pred: dict[str, list[int | None]] = {}
    for item in items:
        cls = item.meta["class_name"]
        y_true.setdefault(cls, []).append(int(item.meta["label"]))
        y_pred.setdefault(cls, []).append(parse_yes_no(preds[item.id]) if item.id in preds else None)
    return y_true, y_pred


def _classification(task: TaskSpec, items: Sequence[EvalItem], preds: Mapping[str, str]) -> dict[str, Any]:
    y_true, y_pred = classification_inputs(items, preds)
    classes = [c for c in task.classes if c in y_true]
    missing = [c for c in task.classes if c not in y_true]
    out = classification_scores(y_true, y_pred, classes)
    out["classes_missing"] = missing  # the macro mean is then over fewer classes than the reference: flagged
    return out
