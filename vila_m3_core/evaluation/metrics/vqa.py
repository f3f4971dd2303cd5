"""VQA-RAD and SLAKE metrics (reference: ``metric_radvqa.py`` / ``metric_slakevqa.py``, identical logic).

The published number is exact match after ``strip().lower()`` of both sides, over every ground-truth id (a
missing prediction counts as wrong). Reported alongside it, per ``answer_type``: closed (yes/no) accuracy with the
same exact match, and open-question recall (unigram recall after VQA-v2 normalisation, as for MIMIC-VQA).
"""

from __future__ import annotations

from collections.abc import Mapping

from vila_m3_core.evaluation.metrics.mimicvqa import token_f1


def exact_match(prediction: str, reference: str) -> bool:
    """The reference comparison: ``prediction.strip().lower() == reference.strip().lower()``."""
    return prediction.strip().lower() == reference.strip().lower()


def closed_or_open(answer_type: str | None, reference: str) -> str:
    """Classify a question as ``"closed"`` or ``"open"``.

    Uses the record's ``answer_type`` when present (VQA-RAD/SLAKE write ``CLOSED``/``OPEN``; PathVQA ``yes/no``);
    otherwise a question is closed when its answer is the word yes or no.
    """
    if answer_type:
        kind = answer_type.strip().lower()
        if kind in ("closed", "yes/no", "yes_no", "yesno"):
            return "closed"
        if kind in ("open", "other", "open-ended"):
            return "open"
    return "closed" if reference.strip().lower() in ("yes", "no") else "open"


def vqa_scores(
    references: Mapping[str, str],
    predictions: Mapping[str, str],
    answer_types: Mapping[str, str | None] | None = None,
) -> dict[str, float | int]:
    """Score VQA-RAD / SLAKE answers.

    Args:
        references: ground-truth answer per question id (the last gpt turn of each record).
        predictions: model answer per question id; ids missing here count as wrong (and are counted).
        answer_types: optional ``answer_type`` per id (``CLOSED``/``OPEN``); see :func:`closed_or_open`.

    Returns:
        ``accuracy`` (the reference number, fraction of all GT ids), ``closed_accuracy`` (exact match on closed
        questions), ``open_recall`` (mean unigram recall on open questions), ``open_exact_match``, the counts
        ``n``, ``n_closed``, ``n_open`` and ``n_missing`` (GT ids without a prediction).
    """
    answer_types = answer_types or {}
    correct = 0
    closed_hits: list[float] = []
    open_recalls: list[float] = []
    open_hits: list[float] = []
    missing = 0
    for qid, ref in references.items():
        pred = predictions.get(qid)
        if pred is None:  # the reference counts a missing prediction as wrong
            missing += 1
        hit = pred is not None and exact_match(pred, ref)
        pred = pred or ""
        correct += hit
        if closed_or_open(answer_types.get(qid), ref) == "closed":
            closed_hits.append(float(hit))
        else:
            open_hits.append(float(hit))
            open_recalls.append(token_f1(pred.strip().lower(), ref.strip().lower()).recall)
    n = len(references)
    return {
        "accuracy": correct / n if n else 0.0,
        "closed_accuracy": _mean(closed_hits),
        "open_recall": _mean(open_recalls),
        "open_exact_match": _mean(open_hits),
        "n": n,
        "n_closed": len(closed_hits),
        "n_open": len(open_recalls),
        "n_missing": missing,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
