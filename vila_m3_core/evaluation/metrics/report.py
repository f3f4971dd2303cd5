"""Report-generation metrics: BLEU-1..4 (corpus level), ROUGE-L, METEOR and CIDEr via ``pycocoevalcap``.

Reference: ``report_updated/metrics.py``. Both sides are PTB-tokenised (:mod:`.ptb_tokenizer`, Java CoreNLP as
pycocoevalcap does, with a tested pure-Python fallback), one reference per image. BLEU pools n-gram counts over the
whole set with the "closest" reference length; ROUGE-L is the per-sample LCS F-measure (beta 1.2) averaged.
Differences from the reference, on purpose: every reference id is scored; a missing or empty prediction is scored as
an empty string (the reference dropped them silently) and counted in ``n_empty_predictions``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping

from vila_m3_core.evaluation.metrics.cleaning import clean_report
from vila_m3_core.evaluation.metrics.ptb_tokenizer import java_available, ptb_tokenize

logger = logging.getLogger(__name__)


def report_scores(
    references: Mapping[str, str],
    predictions: Mapping[str, str],
    clean_predictions: bool = False,
    tokenizer: str = "auto",
    meteor: bool | None = None,
    cider: bool = True,
) -> dict[str, float | int]:
    """Caption metrics of generated reports against one reference report each.

    Args:
        references: ground-truth report per id; the scored set is exactly these ids.
        predictions: generated report per id (missing ids are scored as empty and counted).
        clean_predictions: apply the reference's cleaning (:func:`.cleaning.clean_report`) to predictions first.
        tokenizer: ``"auto"``, ``"java"`` or ``"python"`` (see :func:`.ptb_tokenizer.ptb_tokenize`).
        meteor: compute METEOR (needs Java); ``None`` = when Java is available.
        cider: compute CIDEr (pure Python; IDF from these references).

    Returns:
        ``BLEU_1``..``BLEU_4``, ``ROUGE_L`` and, when computed, ``METEOR`` and ``CIDEr`` (fractions; CIDEr is on
        its own 0-10 scale), plus ``n``, ``n_empty_predictions`` and ``n_missing_predictions``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    ids = list(references)
    missing = sum(1 for i in ids if i not in predictions)
    hyps = [" ".join(predictions.get(i, "").split()) for i in ids]
    if clean_predictions:
        hyps = [clean_report(h) for h in hyps]
    refs = [" ".join(references[i].split()) for i in ids]
    tokens = ptb_tokenize(refs + hyps, backend=tokenizer)
    gts = {k: [tokens[k]] for k in range(len(ids))}
    res = {k: [tokens[len(ids) + k]] for k in range(len(ids))}
    out: dict[str, float | int] = {
        "n": len(ids),
        "n_empty_predictions": sum(1 for h in res.values() if not h[0].strip()),
        "n_missing_predictions": missing,
    }
    if not ids:
        return out
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its BLEU ratios
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"BLEU_{n + 1}": float(b) for n, b in enumerate(bleu)})
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    if cider:
        from pycocoevalcap.cider.cider import Cider

        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if meteor is None:
        meteor = java_available()
    if meteor:
        out["METEOR"] = _meteor(gts, res)
    return out


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    """METEOR 1.5 through pycocoevalcap's Java wrapper (empty hypotheses are sent as a single space)."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        safe_res = {k: [v[0] if v[0].strip() else " "] for k, v in res.items()}
        return float(scorer.compute_score(gts, safe_res)[0])
    finally:
        with contextlib.suppress(Exception):
            scorer.meteor_p.kill()
