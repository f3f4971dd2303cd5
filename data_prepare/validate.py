"""The ``validate`` verb: check any record file (schema, turn order, placeholders, unique ids, image files) and
count what it holds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from data_prepare.checks import record_images, record_problem
from data_prepare.inputs import require_path
from data_prepare.records import EXAMPLES_PER_REASON, progress
from vila_m3_core.errors import VilaM3Error


def read_record_file(path: str | Path) -> tuple[list[Any], list[str]]:
    """The decoded records of a ``.json`` list or ``.jsonl`` file, and the problems of lines that do not decode.

    Raises:
        VilaM3Error: the file is missing, or a ``.json`` file is not a JSON list.
    """
    path = require_path(path, "record file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records, bad = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                bad.append(f"line {number}: {err}")
        return records, bad
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise VilaM3Error(f"record file {path} is not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise VilaM3Error(f"record file {path} must hold a JSON list of records")
    return data, []


def validate_records(path: str, image_root: str | None = None, verify_images: bool = False) -> dict[str, Any]:
    """Check every record of ``path`` and count records by split, answer type, question type, source and images.

    Args:
        path: ``.json`` (list) or ``.jsonl`` record file.
        image_root: when given, every referenced image must exist under it.
        verify_images: with ``image_root``, also decode every image (catches corrupt files; slower).

    Returns:
        ``{"file", "records", "valid", "invalid", "problems": {kind: count}, "examples": {kind: [...]}, "counts"}``.
    """
    root = Path(image_root) if image_root else None
    if root is not None and not root.is_dir():
        raise VilaM3Error(f"image root {root} is not a folder")
    records, bad_lines = read_record_file(path)
    problems: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}

    def note(kind: str, message: str) -> None:
        problems[kind] += 1
        if len(examples.setdefault(kind, [])) < EXAMPLES_PER_REASON:
            examples[kind].append(message)

    for message in bad_lines:
        note("malformed JSON line", message)
    counts: dict[str, Counter[str]] = {key: Counter() for key in ("split", "answer_type", "question_type", "source")}
    images_per_record: Counter[str] = Counter()
    seen: set[str] = set()
    valid = 0
    for index, record in enumerate(progress(records, f"validate {Path(path).name}")):
        problem = record_problem(record, root, verify_images)
        if problem is None and record["id"] in seen:
            problem = ("duplicate id", f"id {record['id']!r} appears more than once")
        if problem is not None:
            kind, message = problem
            ident = record.get("id") if isinstance(record, dict) else None
            note(kind, f"record {index} (id {ident!r}): {message}")
            continue
        seen.add(record["id"])
        valid += 1
        for key, counter in counts.items():
            if key in record:
                counter[str(record[key])] += 1
        images_per_record[str(len(record_images(record)))] += 1
    summary = {
        "file": str(path),
        "records": len(records) + len(bad_lines),
        "valid": valid,
        "invalid": sum(problems.values()),
        "problems": dict(sorted(problems.items())),
        "examples": {k: examples[k] for k in sorted(examples)},
        "counts": {key: dict(sorted(c.items())) for key, c in counts.items() if c}
        | {"images_per_record": dict(sorted(images_per_record.items()))},
    }
    return summary
