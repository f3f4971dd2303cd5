"""Shared record machinery: seeded randomness, turn building, drop accounting and validated, deterministic writing.

Every converter follows the same pattern::

    tally = Tally("slake")
    records = []
    for raw in progress(items, "slake"):
        tally.read += 1
        if bad(raw):
            tally.drop("not English", raw)      # counted and logged, never silent
            continue
        records.append(make_record(...))
    write_records(records, output, tally, image_root=...)  # validates, drops invalid, raises if none left
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from data_prepare.checks import IMAGE_PLACEHOLDER, record_problem
from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger("data_prepare")

T = TypeVar("T")

#: how many examples are kept (and logged) per drop reason
EXAMPLES_PER_REASON = 3


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``items`` in a tqdm progress bar (on stderr) labelled ``description``."""
    return iter(tqdm(items, desc=description, total=total, unit="item", dynamic_ncols=True, mininterval=0.5))


def rng_for(seed: int, *key: Any) -> random.Random:
    """A random generator that depends only on ``seed`` and ``key``, never on processing order or hash seeds.

    Seeding per item makes outputs byte-identical across runs and keeps one record's draw independent of which
    other records were kept.
    """
    return random.Random("|".join([str(int(seed)), *map(str, key)]))


def strip_placeholders(text: str) -> str:
    """``text`` without any ``<image>`` placeholder (raw questions sometimes carry one), stripped."""
    return text.replace(f"\n{IMAGE_PLACEHOLDER}", "").replace(IMAGE_PLACEHOLDER, "").strip()


def question_with_image(question: str, placement: str, rng: random.Random | None = None) -> str:
    """The first human turn: ``question`` plus one ``<image>`` placeholder.

    Args:
        question: the question text (placeholders already removed).
        placement: ``"after"`` -> ``"question\\n<image>"``, ``"before"`` -> ``"<image>\\nquestion"``, ``"random"``
            -> one of the two drawn from ``rng`` (the SLAKE/PathVQA convention, seeded here).
        rng: required for ``"random"``.
    """
    if placement == "random":
        if rng is None:
            raise ValueError("placement='random' needs a seeded rng")
        placement = rng.choice(("after", "before"))
    if placement == "after":
        return f"{question}\n{IMAGE_PLACEHOLDER}"
    if placement == "before":
        return f"{IMAGE_PLACEHOLDER}\n{question}"
    raise VilaM3Error(f"unknown image placement {placement!r}; use 'after', 'before' or 'random'")


def conversation(*values: str) -> list[dict[str, str]]:
    """Alternating human/gpt turns from their texts, starting with human."""
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": value} for i, value in enumerate(values)]


def answer_type_of(answer: str) -> str:
    """``"closed"`` when the answer is exactly yes or no (after lower-casing and trimming punctuation).

    The reference marked any answer *containing* "yes"/"no" as closed ("nodule", "normal"); this does not.
    """
    return "closed" if answer.strip().strip(".!").strip().lower() in ("yes", "no") else "open"


class Tally:
    """Counts of items read, records written and items/records dropped per reason, with a few examples each."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.read = 0
        self.written = 0
        self.dropped: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def drop(self, reason: str, example: Any) -> None:
        """Count one dropped item under ``reason`` and keep it as an example if it is among the first few."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            text = example if isinstance(example, str) else json.dumps(example, default=str, ensure_ascii=False)
            kept.append(text[:300])

    @property
    def total_dropped(self) -> int:
        """Number of dropped items over all reasons."""
        return sum(self.dropped.values())

    def summary(self) -> dict[str, Any]:
        """The counts as a JSON-serialisable dict."""
        return {
            "dataset": self.dataset,
            "read": self.read,
            "written": self.written,
            "dropped": dict(sorted(self.dropped.items())),
            "examples": {k: self.examples[k] for k in sorted(self.examples)},
        }

    def log(self) -> None:
        """Log read / written / dropped counts and the first examples of every drop reason."""
        logger.info(
            "%s: read %d, wrote %d records, dropped %d", self.dataset, self.read, self.written, self.total_dropped
        )
        for reason in sorted(self.dropped):
            logger.warning(
                "%s: dropped %d (%s), e.g. %s",
                self.dataset,
                self.dropped[reason],
                reason,
                " | ".join(self.examples.get(reason, [])),
            )


def valid_records(records: Iterable[dict[str, Any]], tally: Tally, image_root: Path | None) -> list[dict[str, Any]]:
    """The records that pass :func:`record_problem` with unique ids; the others are dropped into ``tally``."""
    seen: set[str] = set()
    kept = []
    for record in records:
        problem = record_problem(record, image_root)
        if problem is None and record["id"] in seen:
            problem = ("duplicate id", f"id {record['id']!r} already written")
        if problem is not None:
            kind, message = problem
            tally.drop(f"invalid record ({kind})", f"{record.get('id')}: {message}")
            continue
        seen.add(record["id"])
        kept.append(record)
    return kept


def dump_records(records: list[dict[str, Any]], output: Path) -> None:
    """Write records as a JSON list (``.json``) or one JSON object per line (``.jsonl``), atomically.

    Keys keep their insertion order and non-ASCII text is written as is, so equal inputs give equal bytes.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    elif output.suffix == ".json":
        text = json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    else:
        raise VilaM3Error(f"output {output} must end in .json (JSON list) or .jsonl (one record per line)")
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, output)


def write_records(
    records: Iterable[dict[str, Any]],
    output: str | Path,
    tally: Tally,
    image_root: str | Path | None = None,
) -> dict[str, Any]:
    """Validate, write and account for the records of one output file.

    Args:
        records: the converted records, in output order.
        output: ``.json`` or ``.jsonl`` path.
        tally: the converter's counts; invalid or duplicate records are added to its drops.
        image_root: when given, records whose image files are missing under it are dropped.

    Returns:
        ``tally.summary()`` after writing.

    Raises:
        VilaM3Error: when no valid record remains (nothing is written then).
    """
    output = Path(output)
    root = Path(image_root) if image_root is not None else None
    if root is not None and not root.is_dir():
        raise VilaM3Error(f"image root {root} is not a folder; pass the folder the record image paths are relative to")
    if root is None:
        logger.warning("%s: image files not checked (no image root given)", tally.dataset)
    kept = valid_records(records, tally, root)
    tally.written = len(kept)
    tally.log()
    if not kept:
        raise VilaM3Error(
            f"{tally.dataset}: no valid record remains out of {tally.read} items read "
            f"(drops: {dict(sorted(tally.dropped.items()))}); check the input paths and format"
        )
    dump_records(kept, output)
    logger.info("%s: wrote %s", tally.dataset, output)
    return tally.summary()
