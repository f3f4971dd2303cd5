"""Helpers for the runner tests: tiny prepared datasets (records in the data_prepare schema, noise images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GEN = {"max_new_tokens": 4}  # short answers keep the CPU tests fast; the task defaults are 1024/512


def write_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def vqa_records(names: list[str], n: int) -> list[dict]:
    return [
        {
            "id": f"q{i}",
            "image": names[i % len(names)],
            "answer_type": "CLOSED" if i % 2 else "OPEN",
            "conversations": [
                {"from": "human", "value": f"Is there an abnormality in region {i}?\n<image>"},
                {"from": "gpt", "value": "yes" if i % 2 else "left lung"},
            ],
        }
        for i in range(n)
    ]
