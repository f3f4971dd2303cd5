"""Fixtures of the expert tests: tiny synthetic volumes (NIfTI, NRRD, DICOM) and random-weight checkpoints written
under the exact file names the real loaders expect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


@pytest.fixture(scope="session")
def ct_phantom() -> tuple[np.ndarray, np.ndarray]:
    """A 32x28x20 HU volume stored left/posterior-first (affine diag(-1.5, -1.5, 2)), with a bright 4x4 block at the
    patient's right-anterior corner of every slice and a body (40 HU) elsewhere."""
    volume = np.full((32, 28, 20), 40.0, dtype=np.float32)
    # voxel index i grows toward the patient's left (affine -1.5), j toward posterior (affine -1.5)
    volume[30:, :, :] = -1000.0  # air along the patient's left edge
    volume[2:6, 0:4, :] = 1000.0  # bright block at the right-anterior corner (low i, low j)
    affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    return volume, affine


@pytest.fixture(scope="session")
def ct_nifti(tmp_path_factory, ct_phantom) -> Path:
    volume, affine = ct_phantom
    return write_nifti(tmp_path_factory.mktemp("ct") / "ct_phantom.nii.gz", volume, affine)


@pytest.fixture(scope="session")
def mri_files(tmp_path_factory) -> list[Path]:
    """Four 24x24x16 MRI 'sequences' (t1ce, t1, t2, flair) with a bright sphere, RAS affine of 1 mm."""
    folder = tmp_path_factory.mktemp("mri")
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (24, 24, 16)], indexing="ij"))
    sphere = ((grid - np.array([12, 12, 8])[:, None, None, None]) ** 2).sum(0) < 25
    rng = np.random.default_rng(1)
    paths = []
    for k, name in enumerate(("t1ce", "t1", "t2", "flair")):
        volume = rng.normal(100 + 10 * k, 5, (24, 24, 16)).astype(np.float32)
        volume[sphere] += 200
        volume[:, :, 0] = 0.0  # background for the nonzero normalisation
        paths.append(write_nifti(folder / f"brats_case_{name}.nii.gz", volume, np.eye(4)))
    return paths


@pytest.fixture(scope="session")
def xrv_cache_dir(tmp_path_factory) -> Path:
    """Random-weight files for the 8 ensemble models, under torchxrayvision's own file names and formats
    (see :func:`vila_m3_core.bundles.synthetic.write_xrv_weights`)."""
    from vila_m3_core.bundles.synthetic import write_xrv_weights

    return write_xrv_weights(tmp_path_factory.mktemp("xrv_cache"))


@pytest.fixture(scope="session")
def vista3d_weights(tmp_path_factory) -> Path:
    """A random checkpoint of the VISTA3D architecture (narrow width 8 instead of 48) as <bundle>/models/model.pt."""
    from vila_m3_core.bundles.synthetic import write_vista3d_weights

    return write_vista3d_weights(tmp_path_factory.mktemp("expert_vista3d") / "models" / "model.pt", encoder_embed_dim=8)


@pytest.fixture(scope="session")
def brats_weights(tmp_path_factory) -> Path:
    """A random checkpoint of the bundle's exact SegResNet as <bundle>/models/model.pt."""
    from vila_m3_core.bundles.synthetic import write_brats_weights

    return write_brats_weights(tmp_path_factory.mktemp("expert_brats") / "models" / "model.pt")
