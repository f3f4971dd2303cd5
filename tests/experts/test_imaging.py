"""Loading 2D pictures, NIfTI, NRRD, DICOM files and series, MRI sequence stacks; modality detection."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import rendering
from vila_m3_core.imaging import load_any, load_medical_image, load_mri_sequences


def write_nifti(path, array, affine):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def test_png_stays_upright(tmp_path):
    pixels = np.zeros((20, 30), dtype=np.uint8)
    pixels[2, 25] = 200  # top-right
    Image.fromarray(pixels).save(tmp_path / "xray.png")
    image = load_medical_image(tmp_path / "xray.png")
    assert not image.is_3d and image.modality is None and image.file_type == "2d"
    grey = image.grey_2d()
    assert grey.shape == (20, 30) and grey[2, 25] == 200
    picture, index = rendering.render_image_slice(image)
    assert index == -1 and np.asarray(picture)[2, 25].tolist() == [200, 200, 200]


def test_rgb_jpeg_first_channel(tmp_path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 90
    rgb[..., 1] = 10
    Image.fromarray(rgb).save(tmp_path / "cxr.png")
    image = load_medical_image(tmp_path / "cxr.png", modality="CXR")
    assert image.modality == "CXR"
    assert float(image.grey_2d().mean()) == 90.0


def test_nifti_nrrd_and_modality(tmp_path, ct_phantom):
    import nrrd

    volume, affine = ct_phantom
    nifti = load_medical_image(write_nifti(tmp_path / "volume.nii.gz", volume, affine))
    assert nifti.is_3d and nifti.data.shape == (1, 32, 28, 20)
    assert nifti.modality == "CT"  # air at -1000 HU
    assert nifti.spacing == pytest.approx((1.5, 1.5, 2.0))
    nrrd.write(
        str(tmp_path / "volume.nrrd"),
        volume,
        {"space": "left-posterior-superior", "space directions": np.diag([1.5, 1.5, 2.0]), "space origin": np.zeros(3)},
    )
    loaded = load_medical_image(tmp_path / "volume.nrrd")
    assert loaded.file_type == "nrrd" and loaded.data.shape == (1, 32, 28, 20) and loaded.modality == "CT"
    # the NRRD is LPS with positive steps = the NIfTI's RAS with negative steps: same picture
    a, _ = rendering.render_image_slice(nifti, 10)
    b, _ = rendering.render_image_slice(loaded, 10)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    mri = load_medical_image(write_nifti(tmp_path / "case_flair.nii.gz", np.abs(volume), affine))
    assert mri.modality == "MRI"
    unknown = load_medical_image(write_nifti(tmp_path / "volume2.nii.gz", np.abs(volume), affine))
    assert unknown.modality is None


def test_dicom_files_modality():
    from pydicom.data import get_testdata_file

    ct = load_medical_image(get_testdata_file("CT_small.dcm"))
    assert ct.modality == "CT" and ct.is_3d and ct.data.shape == (1, 128, 128, 1)
    mr = load_medical_image(get_testdata_file("MR_small.dcm"))
    assert mr.modality == "MRI" and mr.header["Modality"] == "MR"


def test_mri_sequences(mri_files):
    image = load_mri_sequences(mri_files)
    assert image.data.shape == (4, 24, 24, 16) and image.modality == "MRI"
    assert image.channel_names == ("t1ce", "t1", "t2", "flair")
    assert load_any([str(p) for p in mri_files]).data.shape[0] == 4
    with pytest.raises(VilaM3Error, match="order t1ce, t1, t2, flair; got 3"):
        load_mri_sequences(mri_files[:3])


def test_bad_inputs(tmp_path):
    with pytest.raises(VilaM3Error, match="not found"):
        load_medical_image(tmp_path / "missing.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(VilaM3Error, match="Cannot read"):
        load_medical_image(tmp_path / "broken.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VilaM3Error, match="Unsupported"):
        load_medical_image(tmp_path / "notes.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(VilaM3Error, match="no DICOM"):
        load_medical_image(tmp_path / "empty_dir")
