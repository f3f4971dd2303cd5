"""PTB tokenisation for the caption metrics, as pycocoevalcap does it.

:func:`ptb_tokenize` runs ``pycocoevalcap``'s own ``PTBTokenizer`` (Stanford CoreNLP 3.4.1 through Java, lower-
cased, punctuation tokens removed) when a Java runtime is on the PATH; that is the reference tokenisation. When
Java is absent it falls back to :func:`python_ptb_tokenize`, a pure-Python re-implementation of the parts of the
CoreNLP PTB lexer that occur in radiology reports. The fallback is tested to give the same tokens on the real IU
X-ray reports; known differences are listed in ``docs/evaluation.md``.

Note the reference quirk that is reproduced: with ``-lowerCase`` CoreNLP emits brackets as ``-lrb-``/``-rrb-``,
which pycocoevalcap's punctuation list (upper-case ``-LRB-``) does not remove, so they count as words.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

# pycocoevalcap's PUNCTUATIONS list (tokens dropped after tokenisation)
PUNCTUATION_TOKENS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
# Abbreviations CoreNLP keeps with their period (the subset relevant to clinical English; case-insensitive).
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs etc jr sr inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec "
    "no fig figs approx est vol e.g i.e a.m p.m ct".split()
)
_NUMBER = re.compile(r"^[-+]?(\d+([.,:/]\d+)*|\.\d+)$")
_ACRONYM = re.compile(r"^([a-z]\.){2,}$", re.IGNORECASE)  # e.g. "p.m." "u.s."
_BANG_RUN = re.compile(r"[!?]+$")
_TAG = re.compile(r"</?[A-Za-z]+>")
_CANNOT = re.compile(r"\b(can)(not)\b", re.IGNORECASE)
_NUMBERED_ITEM = re.compile(r"\b(\d+)\.([A-Za-z])")
_DECIMAL_RATIO = re.compile(r"^(\d+\.\d+)/(\d+\.\d+)$")
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$", re.IGNORECASE)
_INNER_QUOTE = re.compile(r"^([a-z0-9]+)'([a-z]+)$")


def java_available() -> bool:
    """True when a ``java`` executable is on the PATH (needed by the reference PTB tokenizer and METEOR)."""
    return shutil.which("java") is not None


def ptb_tokenize(texts: Sequence[str], backend: str = "auto") -> list[str]:
    """Tokenise each text the pycocoevalcap way; returns space-joined lower-case tokens, one string per text.

    Args:
        texts: raw strings (newlines are treated as spaces, as pycocoevalcap does).
        backend: ``"java"`` (pycocoevalcap's PTBTokenizer, needs Java), ``"python"`` (the fallback) or ``"auto"``
            (Java when available, else Python with a warning).
    """
    requested = backend
    if backend == "auto":
        backend = "java" if java_available() else "python"
        if backend == "python":
            logger.warning("java not found: using the pure-Python PTB tokenizer fallback (see docs/evaluation.md)")
    if backend == "python":
        return [python_ptb_tokenize(t) for t in texts]
    if backend != "java":
        raise ValueError(f"unknown tokenizer backend {backend!r}; use auto, java or python")
    try:
        return _java_tokenize(texts)
    except (OSError, VilaM3Error) as err:
        if requested != "auto":
            raise VilaM3Error(
                f"The Java PTB tokenizer failed ({err}); install a Java runtime or use 'python'."
            ) from err
        logger.warning("Java PTB tokenizer failed (%s): using the pure-Python fallback", err)
        return [python_ptb_tokenize(t) for t in texts]


def _java_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer, checked: it silently returns fewer lines when Java fails."""
    if not texts:
        return []
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # pycocoevalcap keys by image id; plain integer keys keep the input order.
    captions: Mapping[int, list[dict[str, str]]] = {i: [{"caption": t}] for i, t in enumerate(texts)}
    tokenized = PTBTokenizer().tokenize(captions)
    if len(tokenized) != len(texts):
        raise VilaM3Error(f"the Java tokenizer returned {len(tokenized)} of {len(texts)} lines")
    out = [tokenized[i][0] for i in range(len(texts))]
    if not any(out) and any(any(c.isalnum() for c in t) for t in texts):
        raise VilaM3Error("the Java tokenizer returned only empty lines")
    return out


def python_ptb_tokenize(text: str) -> str:
    """Pure-Python approximation of CoreNLP's PTBTokenizer (``-preserveLines -lowerCase``) + punctuation removal."""
    text = text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    text = _TAG.sub(r" \g<0> ", text)  # SGML tags such as <br> are tokens of their own
    text = _CANNOT.sub(r"\1 \2", text)
    text = _NUMBERED_ITEM.sub(r"\1 . \2", text)  # "1.There" -> "1 . There"
    tokens: list[str] = []
    for chunk in text.replace("\n", " ").split():
        tokens.extend(_split_chunk(chunk.lower()))
    return " ".join(t for t in tokens if t not in PUNCTUATION_TOKENS)


def _split_chunk(chunk: str) -> list[str]:
    """Split one whitespace-delimited chunk into PTB tokens (lower-case input)."""
    prefix: list[str] = []
    suffix: list[str] = []
    # leading punctuation / brackets / quotes
    while chunk:
        ch = chunk[0]
        if ch in _BRACKETS:
            prefix.append(_BRACKETS[ch])
        elif ch == '"':
            prefix.append("``")
        elif ch in "`'" and not _CONTRACTION.match(chunk):
            prefix.append("`")
        elif ch in ",;:!?" or (ch in "-" and len(chunk) > 1 and not chunk[1].isdigit()):
            prefix.append(ch)
        elif ch == "<" and not _TAG.match(chunk):
            prefix.append(ch)
        elif chunk.startswith("..."):
            prefix.append("...")
            chunk = chunk[3:]
            continue
        else:
            break
        chunk = chunk[1:]
    # trailing punctuation
    while chunk:
        ch = chunk[-1]
        run = _BANG_RUN.search(chunk)
        if run and len(run.group()) > 1:  # CoreNLP keeps "!?" / "!!" as one token
            suffix.append(run.group())
            chunk = chunk[: run.start()]
            continue
        if ch in _BRACKETS:
            suffix.append(_BRACKETS[ch])
        elif ch == '"':
            suffix.append("''")
        elif ch == "'" and not chunk.endswith("s'"):
            suffix.append("'")
        elif ch in ",;:!?%" or (ch in "-/" and len(chunk) > 1) or (ch == ">" and not _TAG.search(chunk)):
            suffix.append(ch)
        elif chunk.endswith("..."):
            suffix.append("...")
            chunk = chunk[:-3]
            continue
        elif ch == "." and not _keeps_period(chunk) and not (suffix and _NUMBER.match(chunk[:-1])):
            # a number's period followed by more punctuation ("2.,") stays on the number, as in CoreNLP
            suffix.append(".")
        else:
            break
        chunk = chunk[:-1]
    middle = _split_inner(chunk) if chunk else []
    return prefix + middle + suffix[::-1]


def _keeps_period(chunk: str) -> bool:
    """Whether a chunk ending in "." keeps the period (abbreviations, acronyms); a lone "." does not."""
    if chunk == ".":
        return False
    body = chunk[:-1]
    return body in _ABBREVIATIONS or bool(_ACRONYM.match(chunk))


def _split_inner(chunk: str) -> list[str]:
    """Split brackets, commas and colons inside a chunk, then contractions of each piece."""
    out: list[str] = []
    for piece in re.split(r"([()\[\]{}\"]|,(?!\d)|(?<!\d),|;|!|\?|(?<!\d):|:(?!\d)|%)", chunk):
        if not piece:
            continue
        ratio = _DECIMAL_RATIO.match(piece)
        if ratio:  # CoreNLP keeps integer fractions (1/2) together but splits decimal ones
            out.extend([ratio.group(1), "/", ratio.group(2)])
        elif piece in _BRACKETS:
            out.append(_BRACKETS[piece])
        elif piece == '"':
            out.append("``")
        elif _NUMBER.match(piece):
            out.append(piece)
        else:
            match = _CONTRACTION.match(piece)
            inner_quote = _INNER_QUOTE.match(piece)
            if match and match.group(1):
                out.extend([match.group(1), match.group(2)])
            elif inner_quote:  # an apostrophe that starts no known contraction is a quote: "xxxx't"
                out.extend([inner_quote.group(1), "'", inner_quote.group(2)])
            else:
                out.append(piece)
    return out
