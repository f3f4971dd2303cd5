"""PathVQA to conversation records, from either release.

* Hugging Face parquet shards (``flaviagiammarino/path-vqa``; any shard names, grouped by the split word at the
  start of the file name or in a parent folder): images are written to disk as RGB JPEG (any PIL mode).
* The original UCSD pickles (``test_vqa.pkl`` etc.): the pickle's ``question_id`` becomes the record id, so that
  the PathVQA metric can join predictions on it.

``answer_type`` is ``closed`` for yes/no questions and ``yes_no`` flags that subset (the reported benchmark).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from data_prepare.inputs import require_path
from data_prepare.records import (
    Tally,
    answer_type_of,
    conversation,
    progress,
    question_with_image,
    rng_for,
    strip_placeholders,
    write_records,
)
from vila_m3_core.errors import VilaM3Error

#: which shard splits make up each output split
SPLIT_SHARDS = {"train": ("train", "validation"), "val": ("validation",), "test": ("test",)}
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


def shard_split(path: Path) -> str | None:
    """The split of a parquet shard from its file name (``test-00000-of-00003-xyz.parquet``) or parent folders."""
    head = path.name.split("-")[0].split("_")[0].split(".")[0].lower()
    if head in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[head]
    for parent in path.parents:
        if parent.name.lower() in _SPLIT_ALIASES:
            return _SPLIT_ALIASES[parent.name.lower()]
    return None


def _save_rgb_jpeg(data: bytes, target: Path) -> None:
    """Decode ``data`` with PIL, convert any mode (CMYK, RGBA, P, L, I;16...) to RGB and save it as JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        rgb = image.convert("RGB")
    target.parent.mkdir(parents=True, exist_ok=True)
    rgb.save(target, format="JPEG", quality=95)


def convert_pathvqa_parquet(
    input: str, output: str, split: str = "train", image_dir: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Convert the Hugging Face PathVQA parquet shards to records and JPEG images.

    Args:
        input: folder searched recursively for ``*.parquet`` shards.
        output: record file; image paths are relative to ``image_dir``.
        split: ``train`` (train + validation shards), ``val`` or ``test``.
        image_dir: where images are written as ``<shard split>/<name>.jpg``; default ``images`` next to ``output``.
        seed: seeds the before/after placement of ``<image>``.
    """
    if split not in SPLIT_SHARDS:
        raise VilaM3Error(f"pathvqa split must be one of {tuple(SPLIT_SHARDS)}, not {split!r}")
    folder = require_path(input, "PathVQA parquet folder", folder=True)
    shards = sorted(p for p in folder.rglob("*.parquet") if shard_split(p) in SPLIT_SHARDS[split])
    if not shards:
        raise VilaM3Error(f"no {'/'.join(SPLIT_SHARDS[split])} parquet shards found under {folder}")
    images_root = Path(image_dir) if image_dir else Path(output).parent / "images"
    tally = Tally(f"pathvqa-parquet/{split}")
    records: list[dict[str, Any]] = []
    written: dict[str, str] = {}  # relative image path -> sha1 of its source bytes
    row_number: dict[str, int] = {}  # running row number per shard split (shards in name order): stable ids
    for shard in shards:
        shard_name = shard_split(shard)
        try:
            table = pq.read_table(shard)
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise VilaM3Error(f"parquet shard {shard} could not be read ({err})") from err
        missing = [c for c in ("image", "question", "answer") if c not in table.column_names]
        if missing:
            raise VilaM3Error(f"parquet shard {shard} lacks column(s) {missing}; found {table.column_names}")
        rows = table.select(["image", "question", "answer"]).to_pylist()
        for row_index, row in enumerate(progress(rows, f"pathvqa {shard.name}")):
            tally.read += 1
            row_number[shard_name] = row_number.get(shard_name, -1) + 1
            image, question, answer = row["image"], row["question"], row["answer"]
            data = image.get("bytes") if isinstance(image, dict) else None
            if not data or not question or answer is None or str(answer).strip() == "":
                tally.drop("malformed row (missing image bytes, question or answer)", f"{shard.name}#{row_index}")
                continue
            digest = hashlib.sha1(data).hexdigest()
            source_name = Path(str(image.get("path") or "")).stem or digest[:16]
            relative = f"{shard_name}/{source_name}.jpg"
            if written.get(relative, digest) != digest:  # same name, different picture: keep both
                relative = f"{shard_name}/{source_name}-{digest[:12]}.jpg"
            if relative not in written:
                try:
                    _save_rgb_jpeg(data, images_root / relative)
                except (UnidentifiedImageError, OSError, ValueError) as err:
                    tally.drop("unreadable image", f"{shard.name}#{row_index}: {err}")
                    continue
                written[relative] = digest
            record_id = f"pathvqa-{shard_name}-{row_number[shard_name]}"
            answer = str(answer).strip()
            human = question_with_image(strip_placeholders(str(question)), "random", rng_for(seed, record_id))
            answer_type = answer_type_of(answer)
            records.append(
                {
                    "id": record_id,
                    "image": relative,
                    "conversations": conversation(human, answer),
                    "split": "test" if split == "test" else ("val" if split == "val" else "train"),
                    "answer_type": answer_type,
                    "yes_no": answer_type == "closed",
                    "source": "pathvqa",
                }
            )
    return write_records(records, output, tally, images_root)


def _first(item: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if item.get(key) not in (None, ""):
            return item[key]
    return None


def convert_pathvqa_pickle(
    input: str, output: str, image_root: str | None = None, split: str = "test", seed: int = 0
) -> dict[str, Any]:
    """Convert an original PathVQA pickle (``test_vqa.pkl``, ``train_vqa.pkl``, ...) to records.

    Each item holds ``question_id``, ``img_id`` (or ``image``), the question (``sent`` or ``question``), the
    answer (``answer`` or the first key of ``label``) and ``answer_type`` (``yes/no`` or other).

    Args:
        input: the pickle file.
        output: record file; ids are the pickle's ``question_id``s.
        image_root: the PathVQA ``images`` folder (``<split>/<img_id>.jpg``); checked when given.
        split: written into the records' ``split`` field.
        seed: seeds the before/after placement of ``<image>``.
    """
    if split not in SPLIT_SHARDS:
        raise VilaM3Error(f"pathvqa split must be one of {tuple(SPLIT_SHARDS)}, not {split!r}")
    path = require_path(input, "PathVQA pickle")
    try:
        with path.open("rb") as handle:
            items = pickle.load(handle)  # the dataset's own release format
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise VilaM3Error(f"PathVQA pickle {path} could not be read ({err})") from err
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise VilaM3Error(f"PathVQA pickle {path} must hold a list of question dicts")
    tally = Tally(f"pathvqa-pickle/{split}")
    records: list[dict[str, Any]] = []
    for item in progress(items, f"pathvqa {path.name}"):
        tally.read += 1
        if not isinstance(item, dict):
            tally.drop("malformed item (not a dict)", item)
            continue
        question_id = _first(item, "question_id", "qid")
        image_id = _first(item, "img_id", "image", "image_name")
        question = _first(item, "sent", "question")
        answer = _first(item, "answer")
        if answer is None and isinstance(item.get("label"), dict) and item["label"]:
            answer = next(iter(item["label"]))
        if question_id is None or image_id is None or question is None or answer is None:
            tally.drop("malformed item (missing question_id, image, question or answer)", item)
            continue
        image_id = str(image_id)
        image = image_id if Path(image_id).suffix else f"{image_id.split('_')[0]}/{image_id}.jpg"
        answer = str(answer).strip()
        raw_type = str(item.get("answer_type", "")).strip().lower()
        yes_no = raw_type == "yes/no" if raw_type else answer_type_of(answer) == "closed"
        human = question_with_image(strip_placeholders(str(question)), "random", rng_for(seed, question_id))
        records.append(
            {
                "id": str(question_id),
                "image": image,
                "conversations": conversation(human, answer),
                "split": split,
                "answer_type": "closed" if yes_no else "open",
                "yes_no": yes_no,
                "source": "pathvqa",
                "source_id": str(question_id),
            }
        )
    return write_records(records, output, tally, image_root)
