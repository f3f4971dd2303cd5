"""Small synthetic inputs for the agent tests (written in tmp_path; no downloads)."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def cxr_png(tmp_path):
    """A 64x48 grey picture named like the reference's chest X-ray samples."""
    rng = np.random.default_rng(0)
    path = tmp_path / "cxr_00026451_030.png"
    Image.fromarray(rng.integers(0, 255, (64, 48), dtype=np.uint8)).save(path)
    return str(path)


def _write_nifti(path, volume):
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([1.5, 1.5, 2.0, 1.0])), str(path))
    return str(path)


@pytest.fixture
def ct_nifti(tmp_path):
    """A 24x20x10 CT-like volume in HU (air background, a soft-tissue box)."""
    volume = np.full((24, 20, 10), -1000.0)
    volume[4:20, 4:16, 2:8] = 40.0
    return _write_nifti(tmp_path / "ct_liver_0.nii.gz", volume)


@pytest.fixture
def mri_files(tmp_path):
    """Four co-registered 16x16x8 MRI sequences, in the order t1ce, t1, t2, flair."""
    rng = np.random.default_rng(1)
    return [
        _write_nifti(tmp_path / f"mri_case_{name}.nii.gz", rng.random((16, 16, 8)) * (i + 1) * 100)
        for i, name in enumerate(("t1ce", "t1", "t2", "flair"))
    ]
