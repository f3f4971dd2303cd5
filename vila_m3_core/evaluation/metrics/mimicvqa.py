"""MIMIC-VQA (Medical-Diff-VQA) metric: VQA-v2 answer normalisation, closed accuracy, open recall/F1 per type.

Reference: ``mimic_vqa/metric_mimicvqa.py`` of VILA-M3 (adapted from D-RAX / LLaVA-Med). Only the first QA pair of
each record is scored. Closed questions: exact equality of the normalised strings. Open questions: unigram
recall (the published open number) and F1 via :func:`token_f1`. Aggregates per question type, their unweighted
means over the types that have items (``avg_*``) and the means weighted by item counts (``wavg_*``);
``wavg_closed`` is the headline MIMIC-VQA number.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# The VQA-v2 evaluation tables (data, kept verbatim including the reversed "somebody'd" entry so that normalised
# strings equal the reference's; keys with capitals never match because words are lower-cased first).
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
# The reference meant a lookbehind "(?<!\d)" but wrote "(?!<=\d)", which only checks that the period is not
# followed by a digit. Kept as written: it is what produced the published numbers ("grade 5." -> "grade 5").
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")

QUESTION_TYPES = ("abnormality", "presence", "view", "location", "level", "type")


def normalize_answer(text: str) -> str:
    """VQA-v2-style normalisation of one answer (the reference's ``normalize_word``).

    Punctuation next to a space (or anywhere, when the text has ``digit,digit``) is deleted, otherwise replaced by
    a space; periods not followed by a digit are removed; then lower-case, number words -> digits, articles
    dropped, apostrophe-less contractions expanded, commas removed. Differs from the reference only in that the
    period substitution is not capped at 32 replacements (the reference passed ``re.UNICODE`` as the count).
    """
    out = text
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for p in PUNCTUATION:
        if p + " " in text or " " + p in text or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD_STRIP.sub("", out)
    words = [NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words).replace(",", "")


@dataclass(frozen=True)
class TokenScores:
    """Unigram overlap scores of one open answer, each in [0, 1] (recall can exceed 1 only on repeated words)."""

    f1: float
    precision: float
    recall: float


def token_f1(prediction: str, reference: str) -> TokenScores:
    """Unigram precision/recall/F1 of ``prediction`` against ``reference`` (the reference's ``calculate_f1score``).

    Both strings are normalised with :func:`normalize_answer`. True positives count the *prediction's*
    occurrences of shared words; false positives the prediction-only words; false negatives the reference-only
    words. All three scores are 0 when either side is empty or nothing is shared.
    """
    pred_words = Counter(normalize_answer(prediction).split())
    ref_words = Counter(normalize_answer(reference).split())
    if not pred_words or not ref_words:
        return TokenScores(0.0, 0.0, 0.0)
    tp = sum(count for word, count in pred_words.items() if word in ref_words)
    fp = sum(count for word, count in pred_words.items() if word not in ref_words)
    fn = sum(count for word, count in ref_words.items() if word not in pred_words)
    if tp == 0:
        return TokenScores(0.0, 0.0, 0.0)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return TokenScores(2 * precision * recall / (precision + recall), precision, recall)


def extract_prediction(text: str) -> str:
    """The part of a model output the reference scores: after the last ``"Assistant: "``, lower-cased, stripped."""
    return text.split("Assistant: ")[-1].lower().strip()


@dataclass(frozen=True)
class MimicVqaItem:
    """One scored question: its type (one of :data:`QUESTION_TYPES` or any other label), open/closed, answers."""

    question_type: str
    answer_type: str  # "closed" or "open"
    reference: str
    prediction: str


def mimicvqa_scores(items: Iterable[MimicVqaItem]) -> dict[str, float | int | dict]:
    """Score MIMIC-VQA items the reference way.

    Returns a dict with, per question type, ``{"closed": accuracy, "open": mean recall, "open_f1": mean F1,
    "n_closed": int, "n_open": int}`` under ``"per_type"``, and the aggregates ``avg_open``/``avg_closed``
    (unweighted mean over types with items), ``wavg_open``/``wavg_closed`` (weighted by counts), ``wavg_open_f1``,
    ``total_open``, ``total_closed``, ``total_qas``. All scores are fractions in [0, 1].
    """
    closed: dict[str, list[float]] = {}
    open_recall: dict[str, list[float]] = {}
    open_f1: dict[str, list[float]] = {}
    for item in items:
        gt = normalize_answer(item.reference.lower())
        pred = normalize_answer(extract_prediction(item.prediction))
        if item.answer_type == "closed":
            closed.setdefault(item.question_type, []).append(float(pred == gt))
        else:
            scores = token_f1(pred, gt)
            open_recall.setdefault(item.question_type, []).append(scores.recall)
            open_f1.setdefault(item.question_type, []).append(scores.f1)
    per_type: dict[str, dict[str, float | int]] = {}
    for qtype in sorted(set(closed) | set(open_recall)):
        c, r, f = closed.get(qtype, []), open_recall.get(qtype, []), open_f1.get(qtype, [])
        per_type[qtype] = {
            "closed": _mean(c),
            "open": _mean(r),
            "open_f1": _mean(f),
            "n_closed": len(c),
            "n_open": len(r),
        }
    total_closed = sum(len(v) for v in closed.values())
    total_open = sum(len(v) for v in open_recall.values())
    return {
        "per_type": per_type,
        "avg_closed": _mean([_mean(v) for v in closed.values()]),
        "avg_open": _mean([_mean(v) for v in open_recall.values()]),
        "wavg_closed": _mean([x for v in closed.values() for x in v]),
        "wavg_open": _mean([x for v in open_recall.values() for x in v]),
        "wavg_open_f1": _mean([x for v in open_f1.values() for x in v]),
        "total_closed": total_closed,
        "total_open": total_open,
        "total_qas": total_closed + total_open,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
