"""Checks every record must pass: the JSON Schema plus the rules a schema cannot express.

Used both when a converter writes a file (invalid records are dropped and counted) and by the ``validate`` verb.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

IMAGE_PLACEHOLDER = "<image>"
SCHEMA_PATH = Path(__file__).parent / "schema" / "record.schema.json"

#: problem kinds, in the order they are checked; a record is reported under its first problem
PROBLEM_KINDS = ("schema", "turn order", "placeholder count", "image missing", "image unreadable", "duplicate id")


@lru_cache(maxsize=1)
def record_validator() -> jsonschema.Draft202012Validator:
    """The compiled validator of ``schema/record.schema.json`` (loaded once)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def record_images(record: dict[str, Any]) -> list[str]:
    """The image paths of a record in placeholder order (``[]`` for a text-only record)."""
    if "images" in record:
        return list(record["images"])
    if "image" in record:
        return [record["image"]]
    return []


def image_unreadable(path: Path) -> str | None:
    """Why PIL cannot decode the picture at ``path`` (header and data checked), or ``None`` if it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"{type(err).__name__}: {err}"[:200]
    return None


def record_problem(record: Any, image_root: Path | None = None, verify_images: bool = False) -> tuple[str, str] | None:
    """The first problem of one record as ``(kind, message)``, or ``None`` if the record is valid.

    Args:
        record: a decoded record.
        image_root: when given, every image path must name an existing file under it.
        verify_images: also decode every image with PIL (slower; catches truncated or corrupt files).
    """
    errors = sorted(record_validator().iter_errors(record), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "record"
        return "schema", f"{where}: {err.message}"[:300]
    turns = record["conversations"]
    for index, turn in enumerate(turns):
        expected = "human" if index % 2 == 0 else "gpt"
        if turn["from"] != expected:
            return "turn order", f"turn {index} is from {turn['from']!r}, expected {expected!r}"
    images = record_images(record)
    in_gpt = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns if t["from"] == "gpt")
    in_human = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns if t["from"] == "human")
    if in_gpt:
        return "placeholder count", f"{in_gpt} {IMAGE_PLACEHOLDER} placeholder(s) in gpt turns"
    if in_human != len(images):
        return "placeholder count", f"{in_human} {IMAGE_PLACEHOLDER} placeholder(s) for {len(images)} image(s)"
    if image_root is not None:
        for image in images:
            if not (image_root / image).is_file():
                return "image missing", f"{image} not found under {image_root}"
            reason = image_unreadable(image_root / image) if verify_images else None
            if reason is not None:
                return "image unreadable", f"{image}: {reason}"
    return None
