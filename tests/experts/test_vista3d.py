"""VISTA3D end to end on tiny volumes (NIfTI and a DICOM series) with a random checkpoint of the real network
(``vista3d132`` at width 8) loaded from ``<bundle>/models/model.pt``, and a small sliding-window roi."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback, labels
from vila_m3_core.experts.base import ExpertRequest, create_expert
from vila_m3_core.experts.vista3d import Vista3DExpert, key_labels_for
from vila_m3_core.imaging import load_medical_image

ROI = (64, 64, 32)  # one window for both test volumes after resampling to 1.5 mm


@pytest.fixture(scope="module")
def expert(vista3d_weights):
    import vila_m3_core.experts.vista3d  # noqa: F401 - registers "VISTA3D"

    bundle_dir = vista3d_weights.parent.parent
    return create_expert("VISTA3D", bundle_dir=str(bundle_dir), device="cpu", roi_size=ROI, encoder_embed_dim=8)


def test_dicom_series_end_to_end(expert, dicom_series, tmp_path):
    image = load_medical_image(dicom_series)
    request = ExpertRequest(
        image=str(dicom_series),
        args="hepatic tumor",
        prompt="Is there a hepatic tumor in the image",
        trigger="This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. ",
        output_dir=str(tmp_path),
        slice_index=4,
    )
    result = expert.run(request)
    seg = nib.load(result.files["segmentation"])
    # saved in the original image space: same grid and affine as the input, despite the 1.5 mm resampling
    assert seg.shape == (128, 128, 6) and np.allclose(seg.affine, image.affine)
    values = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert values <= {0, 1, 26}
    assert result.data["label_prompt"] == [1, 26] and result.data["slice_index"] == 4
    legend = [tuple(pair) for pair in result.data["legend"]]
    assert result.text == (
        "The results are <image>. The colors in this image describe " + ", ".join(f"{c}: {n}" for c, n in legend) + ". "
        if legend
        else "The results are <image>. The colors in this image describe no segmented structure in this slice. "
    )
    assert all(colour == labels.palette("vista3d")[{"liver": 1, "hepatic tumor": 26}[name]] for colour, name in legend)
    assert result.instruction == "Use this result to respond to this prompt:\nIs there a hepatic tumor in the image"
    assert len(result.images) == 1 and result.images[0].size == (128, 128)
    assert result.text.count("<image>") == len(result.images)
    # volumes over the whole saved segmentation, in ml (0.66 x 0.66 x 5 mm voxels)
    voxel_ml = float(np.prod(image.spacing)) / 1000
    counts = {name: int((np.asarray(seg.dataobj) == i).sum()) for name, i in (("liver", 1), ("hepatic tumor", 26))}
    expected = {name: round(n * voxel_ml, 3) for name, n in counts.items() if n}
    assert result.data["volumes_ml"] == pytest.approx(expected)


def test_nifti_everything_and_segmented_rule(expert, ct_nifti, ct_phantom, tmp_path):
    image = load_medical_image(ct_nifti)
    result = expert.run(
        ExpertRequest(
            image=str(ct_nifti),
            args=None,
            trigger="I segmented the entire image using <VISTA3D(everything)>.",
            output_dir=str(tmp_path),
            slice_index="auto",
            volume=image,
        )
    )
    assert result.instruction == feedback.instruction("")  # the agent, not the expert, applies "segmented"
    assert result.data["group"] == "everything" and len(result.data["label_prompt"]) == 117
    seg = nib.load(result.files["segmentation"])
    assert seg.shape == (32, 28, 20) and np.allclose(seg.affine, ct_phantom[1])
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, *labels.everything_labels()}
    assert 0 <= result.data["slice_index"] < 20


def test_all_air_volume_does_not_crash(expert, tmp_path):
    path = tmp_path / "air_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 8), -1000.0, dtype=np.float32), np.eye(4)), str(path))
    result = expert.run(ExpertRequest(image=str(path), args="organs", output_dir=str(tmp_path)))
    assert nib.load(result.files["segmentation"]).shape == (16, 16, 8)


def test_network_built_once(expert):
    first = expert.load()
    assert expert.load() is first


def test_bad_inputs(expert, tmp_path, ct_nifti):
    from PIL import Image

    Image.new("L", (16, 16)).save(tmp_path / "slice.png")
    with pytest.raises(VilaM3Error, match="3D CT volume"):
        expert.run(ExpertRequest(image=str(tmp_path / "slice.png"), args="organs", output_dir=str(tmp_path)))
    with pytest.raises(VilaM3Error, match="not accepted by the VISTA3D model"):
        expert.run(ExpertRequest(image=str(ct_nifti), args="brain tumor", output_dir=str(tmp_path)))
    with pytest.raises(VilaM3Error, match="Image not found"):
        expert.run(ExpertRequest(image=str(tmp_path / "none.nii.gz"), args="organs", output_dir=str(tmp_path)))


def test_missing_weights_say_where(tmp_path, ct_nifti):
    expert = Vista3DExpert(bundle_dir=str(tmp_path / "bundles" / "expert_vista3d"), device="cpu")
    with pytest.raises(VilaM3Error) as info:
        expert.run(ExpertRequest(image=str(ct_nifti), output_dir=str(tmp_path)))
    message = str(info.value)
    assert "large_files.yml" in message
    assert (
        f"python -m monai.bundle download_large_files --bundle_path {tmp_path / 'bundles' / 'expert_vista3d'}"
        in message
    )


def test_wrong_checkpoint_is_a_clear_error(tmp_path, brats_weights, ct_nifti):
    expert = Vista3DExpert(weights=str(brats_weights), device="cpu", encoder_embed_dim=8)
    with pytest.raises(VilaM3Error, match="does not fit"):
        expert.load()


def test_key_labels_prefer_the_lesion():
    seg = np.zeros((4, 4, 4), dtype=np.int32)
    assert key_labels_for("hepatic tumor", [1, 26], seg) == [1, 26]  # no tumour found: all requested
    seg[0, 0, 0] = 26
    assert key_labels_for("hepatic tumor", [1, 26], seg) == [26]
    assert key_labels_for("organs", [1, 26], seg) == [1, 26]


def test_pipeline_is_the_bundles_own():
    """The expert runs what bundles/expert_vista3d/configs/inference.json defines: one definition of the pipeline."""
    from monai.transforms import CropForegroundd, ScaleIntensityRanged, Spacingd

    from vila_m3_core.bundles.vista3d import Vista3dInferer

    pipeline = Vista3DExpert(device="cpu", encoder_embed_dim=8).pipeline
    assert isinstance(pipeline.inferer, Vista3dInferer)
    assert list(pipeline.inferer.roi_size) == [128, 128, 128] and pipeline.inferer.overlap == 0.3
    transforms = {type(t): t for t in pipeline.preprocessing.transforms}
    assert list(transforms[Spacingd].spacing_transform.pixdim) == [1.5, 1.5, 1.5]
    scaler = transforms[ScaleIntensityRanged].scaler
    assert (scaler.a_min, scaler.a_max) == pytest.approx((-963.8247715525971, 1053.678477684517))
    assert transforms[CropForegroundd].cropper.select_fn.__name__ == "foreground_or_all"
    coarse = Vista3DExpert(device="cpu", encoder_embed_dim=8, config_overrides={"resample_spacing": [3, 3, 3]})
    spacing = next(t for t in coarse.pipeline.preprocessing.transforms if isinstance(t, Spacingd))
    assert list(spacing.spacing_transform.pixdim) == [3, 3, 3]


def test_a_model_zoo_bundle_folder_gets_the_released_pipeline_and_keeps_its_weights(tmp_path, vista3d_weights):
    """A folder from ``monai.bundle download vista3d`` has a config without ``expert_pipeline``: its weights are
    used with this repository's pipeline."""
    import json
    import shutil

    zoo = tmp_path / "vista3d"
    (zoo / "configs").mkdir(parents=True)
    (zoo / "configs" / "inference.json").write_text(json.dumps({"network_def": "$None", "image": ""}))
    (zoo / "models").mkdir()
    shutil.copy(vista3d_weights, zoo / "models" / "model.pt")
    expert = Vista3DExpert(bundle_dir=str(zoo), device="cpu", encoder_embed_dim=8)
    assert expert.pipeline.network_def is not None and expert.load() is expert.pipeline.network_def
    with pytest.raises(VilaM3Error, match="apply to the bundle's pipeline"):
        Vista3DExpert(device="cpu", roi_size=(32, 32, 32), pipeline=expert.pipeline)
