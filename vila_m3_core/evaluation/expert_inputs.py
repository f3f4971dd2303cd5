"""Expert information for the "with expert" benchmarks: CXR ensemble scores and the reference's eval prompts.

Scores come from a precomputed predictions file/folder (the reference's layout: one JSON of class -> probability
per image, or one JSON mapping image -> scores) or are computed on the fly by :class:`vila_m3_core.experts.cxr.
CXRExpert`. They are thresholded at > 0.5 (the reference evaluation) into yes/no lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vila_m3_core.conversation import Turn
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.tasks import BINARY_EXPERT_PROMPT, REPORT_QUERY, EvalItem
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import Expert, ExpertRequest, ExpertResult

logger = logging.getLogger(__name__)

EXPERT_THRESHOLD = 0.5
CXR_TRIGGER = "This looks like an chest x-ray. Let me first trigger <CXR()>."  # "an chest" as in training
REPORT_RESULTS = (
    "The resulting predictions are:\n{lines}. Analyze the image and take these predictions into account when "
    "responding to this prompt.\n{query}"
)


def xrv_class_for(benchmark_class: str) -> str:
    """Finding name (as in :data:`~.tasks.TASKS` classes) of the xrv class that scores a benchmark class."""
    return {"pleural effusion": "effusion"}.get(benchmark_class, benchmark_class)


class ExpertScores:
    """CXR ensemble scores per image, from a file/folder of predictions or computed on the fly.

    Args:
        predictions: a JSON file ``{image: {class: score}}`` or a folder of per-image JSONs named after the image
            (``<image>.json``, ``<image stem>.json`` or ``<image basename>.json``); ``None`` computes scores with
            the CXR expert (``expert`` or a new :class:`~vila_m3_core.experts.cxr.CXRExpert`).
        expert: a ready CXR expert instance (any object with ``predict_files(paths) -> {path: scores}``).
    """

    def __init__(self, predictions: str | Path | None = None, expert: Any = None) -> None:
        self._table: dict[str, dict[str, float]] = {}
        self._folder: Path | None = None
        self._expert = expert
        if predictions is not None:
            path = Path(predictions)
            if path.is_dir():
                self._folder = path
            elif path.is_file():
                data = json.loads(path.read_text())
                self._table = {str(k): _as_floats(v, str(path)) for k, v in data.items()}
            else:
                raise VilaM3Error(f"Expert predictions not found: {path} (a JSON file or a folder of JSONs).")

    @property
    def live(self) -> bool:
        """True when scores are computed by the expert rather than read."""
        return not self._table and self._folder is None

    def scores_for(self, items: Sequence[EvalItem]) -> dict[str, dict[str, float] | None]:
        """Scores per item id (``None`` when the file has none for that image; counted and logged)."""
        out: dict[str, dict[str, float] | None] = {}
        if self.live:
            expert = self._expert or _new_cxr_expert()
            paths = sorted({item.images[0] for item in items if item.images})
            by_path = expert.predict_files(paths)
            for item in items:
                out[item.id] = dict(by_path[item.images[0]]) if item.images else None
        else:
            for item in items:
                out[item.id] = self._lookup(item)
        missing = [i for i, s in out.items() if s is None]
        if missing:
            logger.warning("no expert predictions for %d records (e.g. %s); they get no expert text", len(missing),
                           missing[:5])  # fmt: skip
        return out

    def _lookup(self, item: EvalItem) -> dict[str, float] | None:
        image = item.meta.get("image")
        names = [str(image)] if isinstance(image, str) else []
        return self.lookup([*names, *item.images[:1]])

    def lookup(self, paths: Sequence[str]) -> dict[str, float] | None:
        """Scores of the first of ``paths`` found, trying every trailing part of each path (``/a/b/c.png``:
        ``c.png``, ``b/c.png``, ...) and its stem, as a table key or ``<name>.json`` in the folder."""
        for name in (n for path in paths for n in _candidate_names(path)):
            if name in self._table:
                return self._table[name]
            if self._folder is not None:
                path = self._folder / f"{name}.json"
                if path.is_file():
                    return _as_floats(json.loads(path.read_text()), str(path))
        return None


def _candidate_names(path: str) -> list[str]:
    parts = Path(path).parts
    names = [path] + ["/".join(parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    return names + [Path(path).stem]


def _as_floats(scores: Mapping[str, Any], source: str) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in scores.items()}  # per-model files hold 4-decimal strings
    except (TypeError, ValueError, AttributeError) as err:
        raise VilaM3Error(f"Expert predictions in {source} are not class -> probability: {err}") from err


def _new_cxr_expert() -> Any:
    from vila_m3_core.experts.cxr import CXRExpert

    return CXRExpert()


def expert_lines(scores: Mapping[str, float], leading_space: bool) -> str:
    """``"<finding>: yes|no\\n"`` per class in the scores' order, threshold > 0.5 (with a leading space for the
    classification prompt, as the reference)."""
    pad = " " if leading_space else ""
    findings = feedback.cxr_findings(scores, EXPERT_THRESHOLD, inclusive=False)
    return "".join(f"{pad}{line}\n" for line in feedback.cxr_prediction_lines(findings, order="given"))


def classification_expert_prompt(class_name: str, scores: Mapping[str, float]) -> str:
    """The reference's binary prompt with the expert block (``classification/expert_infer_*.py``)."""
    return BINARY_EXPERT_PROMPT.format(cls=class_name, lines=expert_lines(scores, leading_space=True))


def report_expert_turns(
    image: Any, scores: Mapping[str, float], cards_text: str, query: str = REPORT_QUERY
) -> list[Turn]:
    """The report "with expert" conversation of ``inference_expert.py``: cards + image, the teacher-forced CXR
    trigger, then the predictions with the eval instruction (``prompt.`` not ``prompt:``) and the query."""
    return [
        Turn("user", cards_text + "<image> This is a CXR image.\n" + query, [image]),
        Turn("assistant", CXR_TRIGGER),
        Turn("user", REPORT_RESULTS.format(lines=expert_lines(scores, leading_space=False), query=query)),
    ]


def expert_alone_predictions(
    items: Sequence[EvalItem], scores: Mapping[str, Mapping[str, float] | None]
) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
    """The "TorchXRayVision" row: per benchmark class, the expert's thresholded prediction and score per item."""
    preds: dict[str, list[int]] = {}
    probs: dict[str, list[float]] = {}
    for item in items:
        cls = item.meta["class_name"]
        table = scores.get(item.id) or {}
        by_name = {feedback.cxr_finding_name(k): v for k, v in table.items()}
        score = by_name.get(xrv_class_for(cls), 0.0)
        preds.setdefault(cls, []).append(int(score > EXPERT_THRESHOLD))
        probs.setdefault(cls, []).append(float(score))
    return preds, probs


class PrecomputedCXRExpert(Expert):
    """The CXR expert answering from precomputed ensemble predictions instead of running the 8 networks.

    Same outputs as :class:`vila_m3_core.experts.cxr.CXRExpert` (``predict_files`` for the expert-text mode, ``run``
    with the inference feedback text for the agent mode), read from ``vila-m3 predict`` output or the reference's
    per-image JSON folder. Images without predictions raise :class:`VilaM3Error` (the agent turns it into a message).
    """

    name = "CXR"

    def __init__(self, predictions: str | Path, threshold: float = EXPERT_THRESHOLD, order: str = "sorted") -> None:
        self.table = ExpertScores(predictions)
        self.threshold = threshold
        self.order = order

    def _scores(self, path: str) -> dict[str, float]:
        scores = self.table.lookup([str(path)])
        if scores is None:
            raise VilaM3Error(f"No precomputed CXR predictions for {path}.")
        return scores

    def predict_files(self, paths: Sequence[str | Path]) -> dict[str, dict[str, float]]:
        """``{path: {class: probability}}`` for each path (as :meth:`CXRExpert.predict_files`)."""
        return {str(p): self._scores(str(p)) for p in paths}

    def run(self, request: ExpertRequest) -> ExpertResult:
        """The CXR feedback and instruction for ``request.image`` from the stored scores."""
        image = request.image if isinstance(request.image, str) else request.image[0]
        scores = self._scores(str(image))
        findings = feedback.cxr_findings(scores, self.threshold, inclusive=False)
        return ExpertResult(
            text=feedback.cxr_feedback(findings, self.order),
            instruction=feedback.instruction(request.prompt),
            data={"scores": scores, "findings": findings, "threshold": self.threshold},
        )
