"""BraTS end to end: four NIfTI sequences, the bundle's exact SegResNet with random weights, a small roi."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import ExpertRequest, create_expert
from vila_m3_core.experts.brats import BratsExpert, merge_brats_channels
from vila_m3_core.imaging import load_mri_sequences


@pytest.fixture(scope="module")
def expert(brats_weights):
    import vila_m3_core.experts.brats  # noqa: F401 - registers "BRATS"

    return create_expert("BRATS", weights=str(brats_weights), device="cpu", roi_size=(24, 24, 16))


def test_end_to_end(expert, mri_files, tmp_path):
    result = expert.run(
        ExpertRequest(
            image=[str(p) for p in mri_files],
            prompt="What glioma grade is shown in the image?",
            trigger="This looks like an MRI image sequence. Let me first trigger <BRATS()>.",
            output_dir=str(tmp_path),
            slice_index="auto",
        )
    )
    seg = nib.load(result.files["segmentation"])
    assert seg.shape == (24, 24, 16) and np.allclose(seg.affine, np.eye(4))
    seg_values = np.asarray(seg.dataobj)
    assert set(np.unique(seg_values).tolist()) <= {0, 1, 2, 4}
    present = result.data["labels_in_slice"]
    colours = {1: "red", 2: "blue", 4: "yellow"}
    assert result.text == feedback.brats_feedback(present, colours)
    assert result.instruction == "Use this result to respond to this prompt:\nWhat glioma grade is shown in the image?"
    assert result.images[0].size == (24, 24) and result.text.count("<image>") == 1
    volumes = result.data["regions_ml"]
    assert volumes["whole tumor"] == pytest.approx(float((seg_values > 0).sum()) / 1000, abs=1e-3)
    if (seg_values > 0).any():  # auto = the slice with the largest tumour area
        area = (seg_values > 0).sum(axis=(0, 1))
        assert area[result.data["slice_index"]] == area.max()


def test_same_as_direct_network_call(expert, mri_files):
    """The pipeline equals NormalizeIntensity(nonzero, channel_wise) + sliding window + sigmoid > 0.5 + merge."""
    from monai.inferers import sliding_window_inference
    from monai.transforms import NormalizeIntensity

    image = load_mri_sequences(mri_files)
    volume = NormalizeIntensity(nonzero=True, channel_wise=True)(image.data.as_tensor())
    with torch.no_grad():
        logits = sliding_window_inference(volume[None], (24, 24, 16), 1, expert.load(), overlap=0.5)
    expected = merge_brats_channels(torch.sigmoid(logits[0]) > 0.5)[0].numpy()
    assert np.array_equal(expert.segment(image), expected)


def test_channel_merge_rule():
    probs = np.zeros((3, 2, 2, 1))
    probs[1, 0, 0] = 0.9  # WT only -> 2
    probs[:2, 0, 1] = 0.9  # TC + WT -> 1
    probs[:, 1, 0] = 0.9  # all -> 4
    probs[2, 1, 1] = 0.5  # not above the threshold -> 0
    assert merge_brats_channels(torch.as_tensor(probs) > 0.5)[0, ..., 0].tolist() == [[2, 1], [4, 0]]


def test_segmented_rule_and_training_wording(brats_weights, mri_files, tmp_path):
    expert = BratsExpert(weights=str(brats_weights), device="cpu", roi_size=(24, 24, 16), training_order=True)
    result = expert.run(
        ExpertRequest(
            image=[str(p) for p in mri_files],
            trigger="I segmented any brain tumors using <BRATS()>.",
            output_dir=str(tmp_path),
        )
    )
    assert result.instruction == feedback.instruction("")  # the agent, not the expert, applies "segmented"


def test_wrong_inputs(expert, mri_files, ct_nifti, tmp_path):
    with pytest.raises(VilaM3Error, match="order t1ce, t1, t2, flair; got 2"):
        expert.run(ExpertRequest(image=[str(p) for p in mri_files[:2]], output_dir=str(tmp_path)))
    with pytest.raises(VilaM3Error, match="4 MRI sequences.*got 1 channel"):
        expert.run(ExpertRequest(image=str(ct_nifti), output_dir=str(tmp_path)))
    with pytest.raises(VilaM3Error, match="divisible by 8"):
        BratsExpert(roi_size=(20, 20, 20))


def test_missing_weights_say_where(tmp_path, mri_files):
    expert = BratsExpert(bundle_dir=str(tmp_path / "expert_brats"), device="cpu")
    with pytest.raises(VilaM3Error, match="download_large_files --bundle_path"):
        expert.run(ExpertRequest(image=[str(p) for p in mri_files], output_dir=str(tmp_path)))


def test_pipeline_is_the_bundles_own():
    """The expert runs what bundles/expert_brats/configs/inference.json defines: one definition of the pipeline."""
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import NormalizeIntensityd

    pipeline = BratsExpert(device="cpu").pipeline
    assert isinstance(pipeline.inferer, SlidingWindowInferer)
    assert list(pipeline.inferer.roi_size) == [240, 240, 160] and pipeline.inferer.overlap == 0.5
    assert any(isinstance(t, NormalizeIntensityd) and t.normalizer.nonzero for t in pipeline.preprocessing.transforms)
    overlap = BratsExpert(device="cpu", config_overrides={"inferer#overlap": 0.25}).pipeline.inferer.overlap
    assert overlap == 0.25
    with pytest.raises(VilaM3Error, match="Unknown config key 'roi'"):
        BratsExpert(device="cpu", config_overrides={"roi": [8, 8, 8]})
    network = pipeline.network_def
    assert network.init_filters == 16 and network.in_channels == 4
    assert tuple(network.blocks_down) == (1, 2, 2, 4) and tuple(network.blocks_up) == (1, 1, 1)
    assert network.conv_final[-1].conv.out_channels == 3
