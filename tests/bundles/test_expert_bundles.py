"""Each expert bundle's inference.json through ``python -m monai.bundle run``, on tiny data with random weights."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from vila_m3_core.bundles.cxr import CXR_CLASSES
from vila_m3_core.bundles.runner import run_bundle


def test_brats_inference_writes_a_label_map(brats_images, brats_ckpt, tmp_path):
    run = run_bundle(
        "expert_brats",
        overrides={
            "image": brats_images,
            "ckpt_path": str(brats_ckpt),
            "roi_size": [32, 32, 32],
            "output_dir": str(tmp_path),
        },
        timeout=300,
    )
    assert run.ok, run.output[-3000:]
    seg = nib.load(str(tmp_path / "case1_t1ce_seg.nii.gz"))
    assert seg.shape == nib.load(brats_images[0]).shape and seg.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 4}


def test_vista3d_inference_maps_prompt_names_to_class_values(ct_image, vista3d_ckpt, tmp_path):
    run = run_bundle(
        "expert_vista3d",
        overrides={
            "image": ct_image,
            "label_prompt": "liver,spleen",
            "ckpt_path": str(vista3d_ckpt),
            "encoder_embed_dim": 8,
            "patch_size": [32, 32, 32],
            "output_dir": str(tmp_path),
        },
        timeout=300,
    )
    assert run.ok, run.output[-3000:]
    seg = nib.load(str(tmp_path / "ct0_seg.nii.gz"))
    assert seg.shape == nib.load(ct_image).shape
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0.0, 1.0, 3.0, 255.0}  # liver=1, spleen=3


def test_cxr_inference_writes_scores_json(cxr_png, xrv_dir, tmp_path):
    run = run_bundle(
        "expert_cxr",
        overrides={"image": cxr_png, "weights_dir": str(xrv_dir), "output_dir": str(tmp_path)},
        timeout=300,
    )
    assert run.ok, run.output[-3000:]
    result = json.loads((tmp_path / "cxr0_cxr.json").read_text())
    assert list(result["scores"]) == list(CXR_CLASSES)
    assert all(0.0 <= s <= 1.0 for s in result["scores"].values())
    assert result["findings"] == {k: v > 0.5 for k, v in result["scores"].items()}


def _run_in_process(bundle: str, **overrides) -> None:
    from vila_m3_core.bundles.runner import bundle_workflow

    workflow = bundle_workflow(bundle, overrides={"device": "$torch.device('cpu')", **overrides})
    workflow.initialize()
    workflow.run()


def test_the_vista3d_expert_and_its_bundle_segment_alike(ct_image, vista3d_ckpt, tmp_path):
    """One pipeline definition: the expert (VLM path) and the bundle's evaluator give the same labels."""
    from vila_m3_core.experts.vista3d import Vista3DExpert
    from vila_m3_core.imaging import load_medical_image

    _run_in_process(
        "expert_vista3d",
        image=ct_image,
        label_prompt="liver,spleen",
        ckpt_path=str(vista3d_ckpt),
        encoder_embed_dim=8,
        patch_size=[32, 32, 32],
        output_dir=str(tmp_path),
    )
    from_bundle = np.asarray(nib.load(str(tmp_path / "ct0_seg.nii.gz")).dataobj)
    expert = Vista3DExpert(weights=str(vista3d_ckpt), device="cpu", roi_size=(32, 32, 32), encoder_embed_dim=8)
    from_expert = expert.segment(load_medical_image(ct_image), [1, 3])[0].numpy()
    mapped = from_bundle != 255  # voxels the bundle's inversion could not map back are marked 255
    assert mapped.mean() > 0.9 and np.array_equal(from_bundle[mapped], from_expert[mapped])
    assert set(np.unique(from_expert).tolist()) <= {0, 1, 3}


def test_the_brats_expert_and_its_bundle_segment_alike(brats_images, brats_ckpt, tmp_path):
    from vila_m3_core.experts.brats import BratsExpert
    from vila_m3_core.imaging import load_mri_sequences

    _run_in_process(
        "expert_brats", image=brats_images, ckpt_path=str(brats_ckpt), roi_size=[32, 32, 32], output_dir=str(tmp_path)
    )
    from_bundle = np.asarray(nib.load(str(tmp_path / "case1_t1ce_seg.nii.gz")).dataobj)
    expert = BratsExpert(weights=str(brats_ckpt), device="cpu", roi_size=(32, 32, 32))
    from_expert = expert.segment(load_mri_sequences(brats_images))
    assert np.array_equal(from_bundle, from_expert) and (from_expert > 0).any()
