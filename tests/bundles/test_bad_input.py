"""Bad input to the bundles gives one clear message (VilaM3Error), tested through the configs themselves."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from vila_m3_core.bundles.runner import BUNDLES_DIR, run_bundle
from vila_m3_core.errors import VilaM3Error


def _parsed(bundle: str, item: str, **overrides):
    """Evaluate one item of a bundle's inference.json with overrides, as ``monai.bundle run`` would."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "inference.json"))
    parser.read_meta(str(BUNDLES_DIR / bundle / "configs" / "metadata.json"))
    for key, value in overrides.items():
        parser[key] = value
    try:
        return parser.get_parsed_content(item)
    except RuntimeError as err:  # MONAI wraps errors raised inside config expressions
        cause = err
        while cause is not None and not isinstance(cause, VilaM3Error):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def test_missing_weights_say_how_to_download(tmp_path, brats_images):
    run = run_bundle(
        "expert_brats", overrides={"image": brats_images, "ckpt_path": str(tmp_path / "model.pt")}, timeout=300
    )
    assert not run.ok
    assert "weights not found" in run.output and "download_large_files --bundle_path" in run.output


def test_config_override_with_a_wrong_key_is_refused():
    run = run_bundle("expert_vista3d", overrides={"label_promt": "liver"}, timeout=300)
    assert not run.ok
    assert "Unknown config key --label_promt" in run.output and "Did you mean: label_prompt" in run.output


def test_wrong_number_of_mri_sequences(brats_images):
    with pytest.raises(VilaM3Error, match="exactly 4 MRI sequences"):
        _parsed("expert_brats", "datalist", image=brats_images[:3])


def test_2d_image_to_a_3d_expert(cxr_png, brats_images):
    with pytest.raises(VilaM3Error, match="2D image"):
        _parsed("expert_vista3d", "datalist", image=cxr_png)
    with pytest.raises(VilaM3Error, match="2D image"):
        _parsed("expert_brats", "datalist", image=[cxr_png] + brats_images[1:])


def test_unknown_label_prompt(ct_image):
    with pytest.raises(VilaM3Error, match="Unknown label prompt 'livr'.*Did you mean: liver"):
        _parsed("expert_vista3d", "datalist", image=ct_image, label_prompt="livr")
    with pytest.raises(VilaM3Error, match="out of range"):
        _parsed("expert_vista3d", "datalist", image=ct_image, label_prompt=[500])
    assert _parsed("expert_vista3d", "datalist", image=ct_image, label_prompt="Liver, 3")[0]["label_prompt"] == [1, 3]
    assert "label_prompt" not in _parsed("expert_vista3d", "datalist", image=ct_image, label_prompt="everything")[0]


def test_unreadable_file(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file at all")
    with pytest.raises(VilaM3Error, match="Cannot read .*broken.nii.gz"):
        _parsed("expert_vista3d", "datalist", image=str(broken))
    with pytest.raises(VilaM3Error, match="does not exist"):
        _parsed("expert_cxr", "datalist", image=str(tmp_path / "nothing.png"))
    with pytest.raises(VilaM3Error, match="No chest X-ray image given"):
        _parsed("expert_cxr", "datalist")
    with pytest.raises(VilaM3Error, match="Give a question"):
        _parsed("vila_m3_8b", "requests", image=str(broken), prompt="")


def test_3d_volume_to_the_cxr_expert(ct_image):
    with pytest.raises(VilaM3Error, match="3D volume"):
        _parsed("expert_cxr", "datalist", image=ct_image)


def test_missing_cxr_weights_name_the_files(tmp_path):
    network = _parsed("expert_cxr", "network_def", weights_dir=str(tmp_path / "xrv"), device="$torch.device('cpu')")
    with pytest.raises(VilaM3Error, match="TorchXRayVision weights missing.*download_large_files"):
        network.check_weights()


def test_cli_verb_prints_the_message_not_the_monai_traceback(ct_image):
    from vila_m3_core.cli import CLI

    with pytest.raises(VilaM3Error, match="Unknown label prompt 'livr'") as caught:
        CLI().bundle("run", "expert_vista3d", image=ct_image, label_prompt="livr", load_pretrain=False)
    assert caught.value.__cause__ is None  # raised on its own, not inside MONAI's RuntimeError chain
    with pytest.raises(VilaM3Error, match="Unknown config key --imgae"):
        CLI().bundle("run", "expert_brats", imgae="x")
    with pytest.raises(VilaM3Error, match="Unknown bundle action"):
        CLI().bundle("deploy")
