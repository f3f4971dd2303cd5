"""Classification metrics for ChestX-ray14 and CheXpert yes/no prompts (reference: ``metric_chestxray14.py``,
``metric_chexpert.py``).

Per class, binary F1 of the positive class (``sklearn.metrics.f1_score``); the headline is the unweighted mean over
the reference's classes. Answer parsing reads yes/no as *words*: the reference took the first substring match of
``yes|no`` (so "not sure" and "I don't know" became "no") and then letters a-d found anywhere in free text, which
produced non-binary predictions and an F1 of 0 for the class. Unparseable answers are counted (and scored as "no",
the ChestX-ray14 reference fallback). AUC is reported when per-sample scores are given (the expert-alone row).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

CHESTXRAY14_CLASSES = ("fracture", "pneumothorax", "lung opacity")
CHEXPERT_CLASSES = ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural effusion")

_PREFIX = re.compile(r"^\s*(answer|a)\s*:\s*", re.IGNORECASE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_LETTER = re.compile(r"\(([a-z])\)|^([a-z])(?:[).:,]|$)", re.IGNORECASE | re.MULTILINE)


def parse_yes_no(text: str) -> int | None:
    """1 for yes, 0 for no, ``None`` when the answer has neither word.

    The first whole word ``yes`` or ``no`` decides ("No." -> 0, "Yes, there is" -> 1, "There is no effusion" -> 0);
    "not sure", "unknown" or a bare letter are unparseable. An ``answer:`` prefix is ignored.
    """
    match = _YES_NO.search(_PREFIX.sub("", text.strip()))
    if match is None:
        return None
    return 1 if match.group(1).lower() == "yes" else 0


def parse_choice_letters(text: str, n_options: int) -> list[int]:
    """Option indices (0-based) of a multiple-choice answer: letters in parentheses "(A)" or a letter standing
    alone at a line start ("A.", "B)"), limited to the first ``n_options`` letters; never letters inside words."""
    valid = "abcdefghijklmnopqrstuvwxyz"[:n_options]
    found: list[int] = []
    for paren, bare in _LETTER.findall(text):
        letter = (paren or bare).lower()
        if letter in valid and valid.index(letter) not in found:
            found.append(valid.index(letter))
    return found


def binary_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC via sklearn; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(set(y_true)) < 2:
        return math.nan
    return float(roc_auc_score(list(y_true), list(scores)))


def classification_scores(
    y_true: Mapping[str, Sequence[int]],
    y_pred: Mapping[str, Sequence[int | None]],
    classes: Sequence[str] | None = None,
    scores: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, object]:
    """Per-class binary F1 and the macro mean over ``classes``.

    Args:
        y_true: 0/1 labels per class name.
        y_pred: parsed predictions per class (``None`` = unparseable, scored as 0 and counted).
        classes: the classes averaged (default: those of ``y_true``); every one must be present.
        scores: optional per-sample scores per class for AUC (e.g. the expert's probabilities).

    Returns:
        ``{"f1": macro mean, "per_class": {cls: {"f1", "precision", "recall", "n", "n_positive",
        "n_unparseable", ["auc"]}}, "n_unparseable": total}`` (fractions in [0, 1]).
    """
    from sklearn.metrics import f1_score, precision_score, recall_score

    classes = list(classes or y_true)
    per_class: dict[str, dict[str, float | int]] = {}
    for cls in classes:
        truth = [int(v) for v in y_true[cls]]
        raw = list(y_pred[cls])
        if len(raw) != len(truth):
            raise ValueError(f"class {cls!r}: {len(truth)} labels but {len(raw)} predictions")
        pred = [int(p) if p is not None else 0 for p in raw]
        entry: dict[str, float | int] = {
            "f1": float(f1_score(truth, pred, pos_label=1, zero_division=0.0)),
            "precision": float(precision_score(truth, pred, pos_label=1, zero_division=0.0)),
            "recall": float(recall_score(truth, pred, pos_label=1, zero_division=0.0)),
            "n": len(truth),
            "n_positive": sum(truth),
            "n_unparseable": sum(1 for p in raw if p is None),
        }
        if scores is not None and cls in scores:
            entry["auc"] = binary_auc(truth, scores[cls])
        per_class[cls] = entry
    return {
        "f1": sum(c["f1"] for c in per_class.values()) / len(per_class) if per_class else 0.0,
        "per_class": per_class,
        "n_unparseable": sum(int(c["n_unparseable"]) for c in per_class.values()),
    }
