"""The reference's report-prediction cleaning (``report_updated/cleaning.py``), offered as an option.

Applied to model outputs before the caption metrics and GREEN when ``clean_predictions=True``. Unlike the
reference, a prediction that cleans to nothing is kept as an empty string and scored (the reference wrote no file
for it, so it silently dropped out of the average).
"""

from __future__ import annotations

import re

# Split after "!"/"?" or at a "." that does not end "a.m"/"p.m"/"Dr" and does not precede a digit; the first
# period of "a.m."/"p.m." is protected too (the reference description names a.m/p.m as non-boundaries).
_SENTENCE_SPLIT = re.compile(r"(?<=[!?])\s*|(?<!a\.m)(?<!p\.m)(?<!Dr)(?<!\b[ap](?=\.m\.))\.(?!\d)")
_LEADING_NON_LETTERS = re.compile(r"^[^A-Za-z]+")
MIN_SENTENCE_CHARS = 7  # sentences of <= 6 characters are dropped


def clean_report(text: str) -> str:
    """Clean one generated report; returns ``""`` when no sentence survives.

    Steps (as the reference): collapse newlines/whitespace; split into sentences; drop everything before the first
    ``": "`` in a sentence (``"Findings: "``); skip leading non-letters and capitalise the first letter; drop
    sentences of <= 6 characters; end each sentence with a period unless it already ends in ``.``/``!``/``?``;
    remove exact duplicates (keep the first); drop sentences containing ``?``; join with spaces.
    """
    text = " ".join(text.replace("\n", " ").replace("\r", " ").split())
    kept: list[str] = []
    for sentence in _SENTENCE_SPLIT.split(text):
        if ": " in sentence:
            sentence = sentence.split(": ", 1)[1]
        sentence = _LEADING_NON_LETTERS.sub("", sentence).strip()
        if len(sentence) < MIN_SENTENCE_CHARS:
            continue
        sentence = sentence[0].upper() + sentence[1:]
        if sentence[-1] not in ".!?":
            sentence += "."
        if "?" in sentence or sentence in kept:
            continue
        kept.append(sentence)
    return " ".join(kept)
