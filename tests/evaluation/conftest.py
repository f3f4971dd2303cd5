"""Tiny prepared datasets for the runner tests (records in the data_prepare schema, noise images)."""

from __future__ import annotations

import json

import pytest
from eval_helpers import GEN, vqa_records, write_images

from vila_m3_core.evaluation.tasks import SINGLE_PRED_SUFFIX


@pytest.fixture(scope="module")
def vqa_dataset(tmp_path_factory, llama3_model):
    """Six VQA-RAD-style records; the answers of q0, q2, q4 are set to what the tiny model really says, so the
    expected accuracy is exactly 3/6 (computed from real generations, not hard-coded outputs)."""
    root = tmp_path_factory.mktemp("vqa")
    names = write_images(root / "images", 3)
    records = vqa_records(names, 6)
    from vila_m3_core.model import GenerationRequest

    chosen = [0, 2, 4]
    requests = [
        GenerationRequest(
            "<image>\n" + records[i]["conversations"][0]["value"].replace("<image>", "").strip() + SINGLE_PRED_SUFFIX,
            (str(root / "images" / records[i]["image"]),),
        )
        for i in chosen
    ]
    for i, text in zip(chosen, llama3_model.generate_batch(requests, batch_size=1, **GEN), strict=True):
        records[i]["conversations"][1]["value"] = text
    path = root / "radvqa.json"
    path.write_text(json.dumps(records))
    return path, root / "images"
