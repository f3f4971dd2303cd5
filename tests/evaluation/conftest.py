"""Tiny prepared datasets for the runner tests (records in the data_prepare schema, noise images)."""

from __future__ import annotations

import json

import pytest
from eval_helpers import GEN, vqa_records, write_images

from vila_m3_core.evaluation.tasks import BINARY_PROMPT, SINGLE_PRED_SUFFIX
from vila_m3_core.experts.feedback import CXR_CLASSES


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


LABELS = {  # image -> class -> label
    "img0.png": {"fracture": 1, "pneumothorax": 0, "lung opacity": 1},
    "img1.png": {"fracture": 0, "pneumothorax": 1, "lung opacity": 0},
}
SCORES = {  # ensemble probabilities; every other class 0.5, i.e. "no" with the strict > 0.5 threshold
    "img0.png": {"Fracture": 0.7, "Pneumothorax": 0.2, "Lung Opacity": 0.4},
    "img1.png": {"Fracture": 0.6, "Pneumothorax": 0.9, "Lung Opacity": 0.1},
}


@pytest.fixture(scope="module")
def cxr_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cxr")
    write_images(root / "images", 2)
    records = []
    for image, labels in LABELS.items():
        for cls, label in [*labels.items(), ("nodule", 1)]:  # nodule is not a benchmark class: skipped
            records.append(
                {
                    "id": f"{image}-{cls}",
                    "image": image,
                    "class_name": cls,
                    "conversations": [
                        {"from": "human", "value": BINARY_PROMPT.format(cls=cls)},
                        {"from": "gpt", "value": "yes" if label else "no"},
                    ],
                }
            )
    (root / "chestxray14.json").write_text(json.dumps(records))
    predictions = {
        image: {cls: scores.get(cls, 0.5) for cls in CXR_CLASSES} for image, scores in SCORES.items()
    }  # fmt: skip
    (root / "preds.json").write_text(json.dumps(predictions))
    return root
