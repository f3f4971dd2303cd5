"""SLAKE (``train.json``, ``validate.json``, ``test.json``, ``imgs/``) to conversation records, English only.

``train`` = train + validate, ``test`` = test. ``answer_type``, ``modality`` and ``content_type`` are kept; the
``<image>`` placeholder goes before or after the question, drawn per question from the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_prepare.inputs import read_json_list, require_path
from data_prepare.records import (
    Tally,
    conversation,
    progress,
    question_with_image,
    rng_for,
    strip_placeholders,
    write_records,
)
from vila_m3_core.errors import VilaM3Error

SPLIT_FILES = {"train": ("train.json", "validate.json"), "test": ("test.json",)}
REQUIRED_FIELDS = ("img_name", "question", "answer", "q_lang")


def convert_slake(input: str, output: str, split: str = "train", seed: int = 0) -> dict[str, Any]:
    """Convert SLAKE to records.

    Args:
        input: the SLAKE folder holding the split JSON files and ``imgs/``.
        output: record file (``.json`` or ``.jsonl``); image paths are relative to ``<input>/imgs``.
        split: ``train`` (train + validate) or ``test``.
        seed: seeds the before/after placement of ``<image>``.

    Returns:
        The read/written/dropped summary.
    """
    if split not in SPLIT_FILES:
        raise VilaM3Error(f"slake split must be one of {tuple(SPLIT_FILES)}, not {split!r}")
    folder = require_path(input, "SLAKE folder", folder=True)
    tally = Tally(f"slake/{split}")
    records: list[dict[str, Any]] = []
    for file_name in SPLIT_FILES[split]:
        items = read_json_list(folder / file_name, f"SLAKE {file_name}")
        stem = Path(file_name).stem
        for index, item in enumerate(progress(items, f"slake {stem}")):
            tally.read += 1
            if not isinstance(item, dict) or any(str(item.get(k, "")).strip() == "" for k in REQUIRED_FIELDS):
                tally.drop("malformed item (missing img_name/question/answer/q_lang)", item)
                continue
            if item["q_lang"] != "en":
                tally.drop("not English", f"{item.get('qid')}: {item['question']}")
                continue
            source_id = item.get("qid", index)
            record_id = f"slake-{stem}-{source_id}"
            question = strip_placeholders(str(item["question"]))
            human = question_with_image(question, "random", rng_for(seed, "slake", record_id))
            record = {
                "id": record_id,
                "image": str(item["img_name"]).strip(),
                "conversations": conversation(human, str(item["answer"]).strip()),
                "split": split,
                "source": "slake",
                "source_id": source_id,
            }
            answer_type = str(item.get("answer_type", "")).strip().lower()
            if answer_type in ("open", "closed"):
                record["answer_type"] = answer_type
            for key in ("modality", "content_type", "location", "base_type"):
                if str(item.get(key, "")).strip():
                    record[key] = str(item[key]).strip()
            records.append(record)
    return write_records(records, output, tally, folder / "imgs")
