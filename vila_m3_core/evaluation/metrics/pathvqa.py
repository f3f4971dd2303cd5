"""PathVQA metric (reference: ``metric_pathvqa.py``): exact match on the yes/no subset, joined on ``question_id``.

The reference reads the original UCSD ``test_vqa.pkl``, keeps items with ``answer_type == "yes/no"``, takes the
first key of each item's ``label`` dict (lower-cased) as ground truth and compares it with ``text.lower()`` of the
prediction whose ``question_id`` is ``str(item["question_id"])``. We also strip the prediction (the reference
relied on VILA having stripped it already; same result for VILA outputs).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error


def load_pathvqa_pickle(path: str | Path) -> dict[str, str]:
    """Read the UCSD ``test_vqa.pkl`` and return ``{str(question_id): answer}`` for its yes/no items.

    Raises:
        VilaM3Error: when the file is missing or its items lack ``question_id``/``answer_type``/``label``.
    """
    path = Path(path)
    if not path.is_file():
        raise VilaM3Error(f"PathVQA pickle not found: {path}. Pass the original release's test_vqa.pkl.")
    with path.open("rb") as fh:
        items = pickle.load(fh)  # noqa: S301 - the user's own dataset file
    return yes_no_references(items)


def yes_no_references(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{str(question_id): first label key, lower-cased}`` for the items whose ``answer_type`` is ``yes/no``."""
    refs: dict[str, str] = {}
    for item in items:
        try:
            if item["answer_type"] != "yes/no":
                continue
            refs[str(item["question_id"])] = next(iter(item["label"])).lower()
        except (KeyError, TypeError, StopIteration) as err:
            raise VilaM3Error(
                f"PathVQA item {dict(item)!r:.200} lacks question_id/answer_type/label ({err!r}); "
                "expected the UCSD test_vqa.pkl layout"
            ) from err
    return refs


def pathvqa_scores(references: Mapping[str, str], predictions: Mapping[str, str]) -> dict[str, float | int]:
    """Exact-match accuracy over the yes/no ``references`` (``{question_id: "yes"|"no"}``).

    Returns ``accuracy`` (fraction in [0, 1]; a missing prediction counts as wrong), ``n`` and ``n_missing``.
    """
    correct = sum(
        1 for qid, ref in references.items() if qid in predictions and predictions[qid].strip().lower() == ref
    )
    missing = sum(1 for qid in references if qid not in predictions)
    n = len(references)
    return {"accuracy": correct / n if n else 0.0, "n": n, "n_missing": missing}
