"""VQA-RAD (``VQA_RAD_Dataset_Public.json`` + ``VQA_RAD_Image_Folder``) to conversation records.

Splits:
    ``train``: every question whose ``phrase_type`` is not ``test_*`` (open and closed), its rephrasing as an
        extra record, and one "which organ" record per image (the records the reference meant to add).
    ``test``: closed questions of ``test_para``/``test_freeform`` plus their rephrasings: the reported benchmark.
    ``test_all``: every ``test_*`` question (open and closed) with ``answer_type`` kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_prepare.inputs import read_json_list
from data_prepare.phrases import load_phrases
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

SPLITS = ("train", "test", "test_all")
TEST_PHRASE_TYPES = ("test_para", "test_freeform")
REQUIRED_FIELDS = ("image_name", "question", "answer", "answer_type", "phrase_type")


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def convert_radvqa(
    input: str, output: str, split: str = "train", image_root: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Convert VQA-RAD to records (question then ``\\n<image>``, answer verbatim).

    Args:
        input: ``VQA_RAD_Dataset_Public.json``.
        output: record file (``.json`` or ``.jsonl``).
        split: ``train``, ``test`` (closed test questions) or ``test_all``.
        image_root: the image folder; default ``VQA_RAD_Image_Folder`` next to the JSON (checked when present).
        seed: seeds the organ-question phrasing.

    Returns:
        The read/written/dropped summary.
    """
    if split not in SPLITS:
        raise VilaM3Error(f"radvqa split must be one of {SPLITS}, not {split!r}")
    items = read_json_list(input, "VQA-RAD JSON")
    root = Path(image_root) if image_root else Path(input).parent / "VQA_RAD_Image_Folder"
    organ_bank = load_phrases("radvqa_organ_questions")
    tally = Tally(f"radvqa/{split}")
    records: list[dict[str, Any]] = []
    organ_images: set[str] = set()
    for index, item in enumerate(progress(items, f"radvqa {split}")):
        tally.read += 1
        if not isinstance(item, dict) or any(_text(item.get(k)) == "" for k in REQUIRED_FIELDS):
            missing = [k for k in REQUIRED_FIELDS if not isinstance(item, dict) or _text(item.get(k)) == ""]
            tally.drop(f"malformed item (missing {', '.join(missing)})", item)
            continue
        phrase_type = _text(item["phrase_type"])
        answer_type = _text(item["answer_type"]).lower()
        is_test = phrase_type.startswith("test")
        if split == "train" and is_test:
            tally.drop("test phrase_type (not in train)", item["phrase_type"])
            continue
        if split != "train" and phrase_type not in TEST_PHRASE_TYPES:
            tally.drop("non-test phrase_type (not in test)", item["phrase_type"])
            continue
        if split == "test" and answer_type != "closed":
            tally.drop("open question (test keeps closed only)", item["question"])
            continue
        meta = {
            "split": "train" if split == "train" else "test",
            "answer_type": answer_type if answer_type in ("open", "closed") else None,
            "question_type": _text(item.get("question_type")) or None,
            "source": "radvqa",
            "source_id": item.get("qid", index),
            "phrase_type": phrase_type,
        }
        meta = {k: v for k, v in meta.items() if v is not None}
        answer = _text(item["answer"])
        image = _text(item["image_name"])
        questions = [("", _text(item["question"]))]
        rephrase = _text(item.get("question_rephrase"))
        if rephrase and rephrase.upper() != "NULL":
            questions.append(("-rephrase", rephrase))
        for suffix, question in questions:
            human = question_with_image(strip_placeholders(question), "after")
            records.append(
                {
                    "id": f"radvqa-{index + 1}{suffix}",
                    "image": image,
                    "conversations": conversation(human, answer),
                    **meta,
                }
            )
        organ = _text(item.get("image_organ")).upper()
        if split == "train" and organ and image not in organ_images:
            # One organ question per image: the reference added one per QA row, repeating the same fact
            # for every question about an image.
            organ_images.add(image)
            organ_name = organ_bank["organ_names"].get(organ, organ.lower())
            question = rng_for(seed, "radvqa-organ", image).choice(organ_bank["questions"])
            records.append(
                {
                    "id": f"radvqa-{index + 1}-organ",
                    "image": image,
                    "conversations": conversation(question_with_image(question, "after"), organ_name),
                    "split": "train",
                    "answer_type": "open",
                    "question_type": "ORGAN",
                    "source": "radvqa",
                    "source_id": item.get("qid", index),
                }
            )
    return write_records(records, output, tally, root if root.is_dir() else None)
