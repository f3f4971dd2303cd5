"""Shared fixtures: tiny random-weight checkpoints in the released layout (built once per test session)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from vila_m3_core.model.tiny import random_image


@pytest.fixture(scope="session")
def tiny_vicuna(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3B/13B-style checkpoint: SentencePiece tokenizer, vicuna_v1 template."""
    from vila_m3_core.model import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-vicuna", flavor="vicuna")


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8B-style checkpoint: Llama-3 special tokens, byte-level BPE, llama_3 template."""
    from vila_m3_core.model import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama3", flavor="llama3")


@pytest.fixture(scope="session")
def vicuna_model(tiny_vicuna: Path):
    from vila_m3_core.model import VilaM3

    return VilaM3.from_pretrained(tiny_vicuna, device="cpu")


@pytest.fixture(scope="session")
def llama3_model(tiny_llama3: Path):
    from vila_m3_core.model import VilaM3

    return VilaM3.from_pretrained(tiny_llama3, device="cpu")


@pytest.fixture
def sample_png(tmp_path: Path) -> Path:
    path = tmp_path / "sample.png"
    random_image(1).save(path)
    return path


@pytest.fixture(scope="session")
def dicom_series(tmp_path_factory) -> Path:
    """A 6-slice CT series built from pydicom's CT_small.dcm (real header), slice k holding k+1 marker pixels."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder = tmp_path_factory.mktemp("dicom_series")
    pixels = base.pixel_array.copy()
    series_uid = generate_uid()
    z0 = float(base.ImagePositionPatient[2])
    for k in range(6):
        ds = copy.deepcopy(base)
        plane = pixels.copy()
        plane[0:8, 0 : 8 + 4 * k] = 4000  # anterior-right corner (row 0 = anterior, col 0 = patient's right)
        ds.PixelData = plane.astype(pixels.dtype).tobytes()
        ds.ImagePositionPatient = [base.ImagePositionPatient[0], base.ImagePositionPatient[1], z0 + 5.0 * k]
        ds.InstanceNumber = k + 1
        ds.SliceLocation = z0 + 5.0 * k
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.save_as(str(folder / f"slice_{k:02d}.dcm"))
    return folder
