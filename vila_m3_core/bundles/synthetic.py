"""Tiny synthetic data and random weights (real architectures) for running the bundles on CPU in tests and CI.

Nothing here downloads anything. Weight files are written under the names and in the formats the bundles load:
``models/model.pt`` state dicts for BraTS/VISTA3D, torchxrayvision's own file names for the CXR ensemble.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

BRATS_SHAPE = (32, 32, 32)
CT_SHAPE = (40, 40, 32)


def _nifti(path: Path, array: np.ndarray, spacing: float = 1.0) -> str:
    import nibabel as nib

    affine = np.diag([spacing, spacing, spacing, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return str(path)


def write_brats_dataset(folder: str | Path, cases: int = 4, shape: tuple[int, int, int] = BRATS_SHAPE) -> Path:
    """``cases`` BraTS-like cases (4 sequences t1ce/t1/t2/flair + a 0/1/2/4 label); ``datalist.json`` splits them
    half training, half validation. Returns the datalist path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    centre = np.array(shape)[:, None, None, None] / 2
    radius2 = ((grid - centre) ** 2).sum(0)
    label = np.zeros(shape, np.uint8)
    label[radius2 < (shape[0] / 3) ** 2] = 2
    label[radius2 < (shape[0] / 5) ** 2] = 1
    label[radius2 < (shape[0] / 8) ** 2] = 4
    items = []
    for case in range(cases):
        images = []
        for k, sequence in enumerate(("t1ce", "t1", "t2", "flair")):
            volume = rng.normal(100 + 10 * k, 5, shape).astype(np.float32) + 50.0 * (label > 0)
            images.append(_nifti(folder / f"case{case}_{sequence}.nii.gz", volume))
        items.append({"image": images, "label": _nifti(folder / f"case{case}_seg.nii.gz", label)})
    half = max(1, cases // 2)
    datalist = folder / "datalist.json"
    datalist.write_text(json.dumps({"training": items[:half], "validation": items[half:]}, indent=2))
    return datalist


def write_ct_dataset(folder: str | Path, cases: int = 4, shape: tuple[int, int, int] = CT_SHAPE) -> Path:
    """``cases`` CT volumes at 1.5 mm with a bright box labelled 1 (e.g. spleen before label mapping);
    ``datalist.json`` splits them half training, half validation. Returns the datalist path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    items = []
    for case in range(cases):
        volume = rng.normal(40, 20, shape).astype(np.float32)
        volume[:2] = -1000.0  # air at the border, so the foreground crop has something to crop
        label = np.zeros(shape, np.uint8)
        label[10:25, 12:28, 8:20] = 1
        volume[label > 0] += 150.0
        items.append(
            {
                "image": _nifti(folder / f"ct{case}.nii.gz", volume, 1.5),
                "label": _nifti(folder / f"ct{case}_label.nii.gz", label, 1.5),
            }
        )
    half = max(1, cases // 2)
    datalist = folder / "datalist.json"
    datalist.write_text(json.dumps({"training": items[:half], "validation": items[half:]}, indent=2))
    return datalist


def write_cxr_dataset(folder: str | Path, images: int = 8, size: tuple[int, int] = (64, 56)) -> Path:
    """8-bit grey PNG chest X-ray stand-ins plus ``train.csv`` / ``val.csv`` (columns image, Atelectasis, Effusion,
    Cardiomegaly; one unknown value). Returns the folder."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(folder / f"cxr{i}.png")
        cardio = "" if i == 3 else str((i // 4) % 2)
        rows.append(f"cxr{i}.png,{i % 2},{(i // 2) % 2},{cardio}")
    header = "image,Atelectasis,Effusion,Cardiomegaly"
    half = images // 2
    (folder / "train.csv").write_text("\n".join([header, *rows[:half]]) + "\n")
    (folder / "val.csv").write_text("\n".join([header, *rows[half:], rows[0], rows[1]]) + "\n")
    return folder


def bundle_network(bundle: str, overrides: dict | None = None) -> Any:
    """The ``network_def`` of one of this repository's bundles, random weights: ``bundle_network("expert_brats")``."""
    from vila_m3_core.bundle_config import read_bundle_config
    from vila_m3_core.bundles.runner import BUNDLES_DIR

    return read_bundle_config(BUNDLES_DIR / bundle, overrides, device="cpu").get_parsed_content("network_def")


def _save_random_network(bundle: str, path: str | Path, seed: int, overrides: dict | None = None) -> Path:
    import torch

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bundle_network(bundle, overrides).state_dict(), path)
    return path


def write_brats_weights(path: str | Path, seed: int = 0) -> Path:
    """Random weights of the ``expert_brats`` bundle's SegResNet at ``path`` (a state dict)."""
    return _save_random_network("expert_brats", path, seed)


def write_vista3d_weights(path: str | Path, encoder_embed_dim: int = 8, seed: int = 0) -> Path:
    """Random weights of the ``expert_vista3d`` bundle's ``vista3d132`` at a narrow width (48 in the release)."""
    return _save_random_network("expert_vista3d", path, seed, {"encoder_embed_dim": encoder_embed_dim})


def write_xrv_weights(folder: str | Path, seed: int = 0) -> Path:
    """Random weights for the 8 ensemble models under torchxrayvision's file names, in its formats: DenseNets as
    whole pickled modules (7 hard links of one file), the ResNet-50 as a state dict. Returns ``folder``."""
    import torch
    import torchvision
    import torchxrayvision as xrv

    from vila_m3_core.experts.cxr import CXR_MODELS, weights_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    densenets = [weights_file(m, str(folder)) for m in CXR_MODELS if m.startswith("densenet")]
    torch.save(xrv.models.DenseNet(num_classes=18), densenets[0])
    for path in densenets[1:]:
        if not path.exists():
            os.link(densenets[0], path)
    resnet = torchvision.models.resnet50(num_classes=18, weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    torch.save(resnet.state_dict(), weights_file("resnet50-res512-all", str(folder)))
    return folder


def write_requests(
    path: str | Path, image: str, prompts: tuple[str, ...] = ("Describe the image.", "Any effusion?")
) -> Path:
    """A ``requests.jsonl`` for ``batch_inference.json``: one request per prompt on ``image``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": f"q{i}", "image": image, "prompt": p}) for i, p in enumerate(prompts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_vqa_records(folder: str | Path, image_name: str, task: str = "radvqa") -> Path:
    """Two VQA records (one closed, one open question) on ``folder/image_name`` as ``<task>_test.json``, the file the
    VLM bundles' ``evaluate.json`` reads from ``dataset_dir`` (LLaVA/VILA record schema)."""
    records = [
        {
            "id": "1",
            "image": image_name,
            "answer_type": "CLOSED",
            "conversations": [
                {"from": "human", "value": "<image>\nIs there a fracture?"},
                {"from": "gpt", "value": "no"},
            ],
        },
        {
            "id": "2",
            "image": image_name,
            "answer_type": "OPEN",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat organ is shown?"},
                {"from": "gpt", "value": "lung"},
            ],
        },
    ]
    path = Path(folder) / f"{task}_test.json"
    path.write_text(json.dumps(records, indent=2))
    return path
