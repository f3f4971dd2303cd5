"""Slice extraction, windowing, colours, legends, volumes and key slices."""

from __future__ import annotations

import numpy as np
import pytest

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import labels, rendering
from vila_m3_core.imaging import load_medical_image


def test_radiological_view_of_asymmetric_phantom(ct_nifti):
    image = load_medical_image(ct_nifti)
    assert image.modality == "CT"  # from the file name
    picture, index = rendering.render_image_slice(image, "middle")
    assert index == 10
    grey = np.asarray(picture)[..., 0]
    assert grey.shape == (28, 32)  # rows = anterior..posterior, cols = patient's right..left
    # the bright right-anterior block is at the top-left (radiological view), air (patient's left) on the right
    assert (grey[0:4, 2:6] == 255).all()
    assert grey[0:4, 6:30].max() < 255 and grey[4:, :].max() < 255
    assert (grey[:, 30:] == 0).all()
    # body at 40 HU through the 50/400 window -> (40 + 150) / 400 * 255 = 121.1 -> 121 (truncated)
    assert grey[20, 20] == 121


def test_dicom_series_keeps_display_orientation_and_slice_order(dicom_series):
    import pydicom

    image = load_medical_image(dicom_series)
    assert image.modality == "CT" and image.is_3d and image.data.shape[-1] == 6
    first = pydicom.dcmread(str(sorted(dicom_series.iterdir())[0]))
    for k in (0, 5):
        picture, index = rendering.render_image_slice(image, k)
        grey = np.asarray(picture)[..., 0]
        assert grey.shape == first.pixel_array.shape  # rows x cols as on the DICOM viewer
        # the marker drawn at rows 0..7, cols 0..(8 + 4k) of the k-th slice (from inferior to superior)
        assert (grey[0:8, 0 : 8 + 4 * k] == 255).all()
        assert (grey[0:8, 8 + 4 * k : 8 + 4 * k + 4] < 255).any()


def test_window_and_min_max():
    hu = np.array([-1000, -150, 50, 250, 3000], dtype=np.float32)
    assert rendering.window_ct(hu).tolist() == [0, 0, 127, 255, 255]
    assert rendering.scale_min_max(np.array([2.0, 4.0, 6.0])).tolist() == [0, 127, 255]
    assert rendering.scale_min_max(np.ones(3)).tolist() == [0, 0, 0]
    with pytest.raises(VilaM3Error, match="modality"):
        rendering.scale_for_display(hu, "CXR")


def test_stable_colours_do_not_depend_on_the_slice():
    palette = labels.palette("vista3d")
    assert len(palette) == 132 and len(set(palette.values())) == 132  # one distinct colour per VISTA3D id
    assert (palette[1], palette[26]) == ("red", "blue")  # the recorded transcript's liver/hepatic tumour colours
    from skimage.color import color_dict

    assert set(palette.values()) <= set(color_dict)
    slice_a = rendering.assign_colours([26, 3], palette)
    slice_b = rendering.assign_colours([1, 26], palette)
    assert slice_a[26] == slice_b[26] == "blue"
    # the reference cycled per slice: the same label changed colour
    ref_a = rendering.assign_colours([26, 3], palette, mode="reference")
    ref_b = rendering.assign_colours([1, 26], palette, mode="reference")
    assert ref_a[26] == "blue" and ref_b[26] == "blue" and ref_a[3] == "red" and ref_b[1] == "red"
    ref_c = rendering.assign_colours([26], palette, mode="reference")
    assert ref_c[26] == "red"
    many = rendering.assign_colours(range(1, 19), palette, mode="reference")
    assert many[17] == many[1] == "red" and many[11] == many[13] == "orange"  # cycling, duplicate orange


def test_overlay_draws_each_label_in_its_colour():
    plane = np.full((6, 6), 100, dtype=np.uint8)
    label_plane = np.zeros((6, 6), dtype=np.int32)
    label_plane[0, 0] = 26
    label_plane[5, 5] = 1
    picture = np.asarray(rendering.overlay_picture(plane, label_plane, {1: "red", 26: "blue"})).astype(int)
    blue, red = picture[0, 0], picture[5, 5]
    assert blue[2] > blue[0] and red[0] > red[2]
    assert picture[3, 3, 0] == picture[3, 3, 1] == picture[3, 3, 2]  # background stays grey


def test_render_segmentation_legend_key_slice_and_volumes():
    image = np.zeros((10, 8, 6), dtype=np.float32)
    seg = np.zeros((10, 8, 6), dtype=np.int32)
    seg[2:6, 2:6, 1] = 1  # liver on slices 1 and 4 (largest on 1)
    seg[2:4, 2:4, 4] = 1
    seg[6:9, 1:3, 4] = 26  # tumour only on slice 4
    palette = labels.palette("vista3d")
    view = rendering.render_segmentation(image, "CT", seg, "auto", palette, labels.vista3d_label_name, key_labels=[26])
    assert view.slice_index == 4
    assert view.labels_in_slice == [1, 26]
    assert view.legend == [("red", "liver"), ("blue", "hepatic tumor")]
    assert rendering.resolve_slice_index("auto", 6, seg, [1]) == 1
    assert rendering.resolve_slice_index("auto", 6, seg, [99]) == 3  # absent -> middle
    assert rendering.key_slice(seg, []) is None
    volumes = rendering.label_volumes_ml(seg, (1.5, 1.5, 2.0))
    assert volumes == pytest.approx({1: 20 * 4.5 / 1000, 26: 6 * 4.5 / 1000})


def test_slice_index_validation():
    assert rendering.resolve_slice_index("middle", 7) == 3
    assert rendering.resolve_slice_index("5", 7) == 5
    with pytest.raises(VilaM3Error, match="outside the volume"):
        rendering.resolve_slice_index(7, 7)
    with pytest.raises(VilaM3Error, match="middle"):
        rendering.resolve_slice_index("top", 7)


def test_label_data_files():
    groups = labels.label_groups()
    assert list(groups)[:3] == ["everything", "hepatic tumor", "hepatoma"]
    assert len(labels.everything_labels()) == 117
    assert labels.group_label_ids("hepatic tumor") == [1, 26]
    assert labels.normalise_group_name(" 'Lung  Tumor' ") == "lung tumor"
    assert labels.normalise_group_name("") == labels.normalise_group_name(None) == "everything"
    with pytest.raises(VilaM3Error, match="not accepted"):
        labels.normalise_group_name("kidney stones")
    assert labels.expand_label_prompt([20, 23, 28]) == [28, 29, 30, 31, 32, 23]
    assert labels.vista3d_label_name(60) == "left iliac vena"
    assert labels.vista3d_label_name(18) == "rectum"  # in no group: the bundle name (the reference dropped it)
