"""ci/verify_bundle checks (positive and negative), override checking, and the small bundle helpers."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from vila_m3_core.bundles import cxr, vista3d
from vila_m3_core.bundles.overrides import check_cli_overrides
from vila_m3_core.bundles.verify import ALL_BUNDLES, BUNDLES_DIR, verify_bundle
from vila_m3_core.distributed import local_device, wrap_ddp
from vila_m3_core.errors import VilaM3Error

RUN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"


@pytest.mark.parametrize("name", ALL_BUNDLES)
def test_every_bundle_verifies(name):
    report = verify_bundle(name, net_check=name == "expert_brats")
    assert report.ok, report.problems
    assert {"structure", "version", "metadata schema"} <= set(report.checked)
    assert any(c.startswith("config inference.json") for c in report.checked)


def test_verify_finds_broken_bundles(tmp_path):
    bundle = tmp_path / "expert_brats"
    shutil.copytree(BUNDLES_DIR / "expert_brats", bundle, ignore=shutil.ignore_patterns("*.pt", "eval"))
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    meta["version"] = "0.2.0"  # not in the changelog
    del meta["authors"]  # required by the schema
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    config["dataloader"]["dataset"] = "@datset"  # dangling reference
    del config["inferer"]  # required infer property
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    (bundle / "LICENSE").unlink()
    problems = "\n".join(verify_bundle("expert_brats", tmp_path, net_check=False).problems)
    assert "missing required file LICENSE" in problems
    assert "version '0.2.0' is not a key of the changelog" in problems
    assert "'authors' is a required property" in problems
    assert "unresolved reference datset" in problems
    assert "missing infer property inferer" in problems


def test_cli_overrides_are_checked_against_the_config_files():
    config = str(BUNDLES_DIR / "expert_brats" / "configs" / "train.json")
    assert check_cli_overrides(
        [RUN, "run", "--config_file", config, "--epochs", "1", "--train#dataloader#num_workers", "0"]
    )
    assert check_cli_overrides(["pytest", "--epocs"])  # not a monai.bundle run: nothing to check
    with pytest.raises(VilaM3Error, match="Unknown config key --epocs.*Did you mean: epochs"):
        check_cli_overrides([RUN, "run", "--config_file", config, "--epocs", "1"])
    with pytest.raises(VilaM3Error, match="Unknown config key --train#dataloadr#num_workers"):
        check_cli_overrides([RUN, "run", "--config_file", config, "--train#dataloadr#num_workers", "0"])
    overlay = str(BUNDLES_DIR / "expert_brats" / "configs" / "evaluate.json")
    assert check_cli_overrides(
        [RUN, "run", f"--config_file=['{config}','{overlay}']", "--validate#additional_metrics", "{}"]
    )


def test_per_class_auc_skips_single_outcome_and_unknown_labels():
    metric = cxr.PerClassAUC()
    metric.reset()
    labels = torch.full((4, len(cxr.CXR_CLASSES)), float("nan"))
    labels[:, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # Atelectasis: perfect ranking below
    labels[:, 7] = torch.tensor([1.0, 1.0, 1.0, 1.0])  # Effusion: one outcome only -> skipped
    preds = torch.zeros(4, len(cxr.CXR_CLASSES))
    preds[:, 0] = torch.tensor([0.1, 0.9, 0.2, 0.8])
    metric.update((list(preds), list(labels)))
    assert metric.per_class() == {"Atelectasis": 1.0}
    assert metric.compute() == 1.0
    empty = cxr.PerClassAUC()
    empty.reset()
    empty.update(([torch.zeros(18)], [torch.full((18,), float("nan"))]))
    assert math.isnan(empty.compute())


def test_masked_bce_ignores_unknown_labels():
    loss = cxr.MaskedBCEWithLogitsLoss()
    logits = torch.tensor([[2.0, -1.0]])
    target = torch.tensor([[1.0, float("nan")]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0]), torch.tensor([1.0]))
    assert torch.isclose(loss(logits, target), expected)
    assert loss(logits, torch.full_like(logits, float("nan"))).item() == 0.0


def test_label_csv_maps_columns_and_unknowns(tmp_path):
    (tmp_path / "l.csv").write_text("image,pleural_thickening,Effusion,Age\na.png,1,,40\nb.png,0,-1,50\n")
    items = cxr.read_label_csv(str(tmp_path / "l.csv"), image_root=str(tmp_path))
    k_pt, k_eff = cxr.CXR_CLASSES.index("Pleural_Thickening"), cxr.CXR_CLASSES.index("Effusion")
    assert items[0]["image"] == str(tmp_path / "a.png") and items[0]["label"][k_pt] == 1.0
    assert np.isnan(items[0]["label"][k_eff]) and np.isnan(items[1]["label"][k_eff])  # empty and -1: unknown
    (tmp_path / "bad.csv").write_text("path,Effusion\na.png,1\n")
    with pytest.raises(VilaM3Error, match="no 'image' column"):
        cxr.read_label_csv(str(tmp_path / "bad.csv"))


def test_label_channels_and_everything_labels():
    label = torch.tensor([[[[0, 3], [1, 3]]]])  # [1, 1, 2, 2]: one channel, 1x2x2 voxels
    channels = vista3d.label_channels(label, [3, 1])
    assert channels.shape == (2, 1, 2, 2) and channels[0].sum() == 2 and channels[1].sum() == 1
    assert len(vista3d.EVERYTHING_LABELS) == 117 and 2 not in vista3d.EVERYTHING_LABELS


def test_ddp_wrapping_on_cpu_uses_no_device_ids(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        wrapped = wrap_ddp(torch.nn.Linear(2, 2), local_device())
        assert wrapped.device_ids is None and local_device().type == "cpu"
    finally:
        dist.destroy_process_group()


def test_finish_distributed_run_flushes_and_ends_the_worker(tmp_path):
    """The multi-GPU overlays end with finish_distributed_run: exit 0 after the logs, nothing after it runs."""
    import subprocess
    import sys

    from vila_m3_core.distributed import finish_distributed_run

    finish_distributed_run()  # no process group: a no-op, the test process goes on
    script = (
        "import logging, torch.distributed as dist\n"
        "from vila_m3_core.distributed import finish_distributed_run\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path / 'pg'}', rank=0, world_size=1)\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "print('trained', end='')\n"
        "logging.info('saved')\n"
        "finish_distributed_run()\n"
        "print('after the end')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "trained" and "saved" in done.stderr


def test_pin_hashes_fills_only_empty_hashes_of_downloaded_files(tmp_path):
    from vila_m3_core.bundles.large_files import file_hash, pin_hashes

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.pt").write_bytes(b"aaa")
    (tmp_path / "models" / "b.pt").write_bytes(b"bbb")
    (tmp_path / "large_files.yml").write_text(
        "# comment kept\nlarge_files:\n"
        '  - path: "models/a.pt"\n    url: "https://x/a.pt"\n    hash_val: ""\n    hash_type: "sha256"\n'
        '  - path: "models/b.pt"\n    url: "https://x/b.pt"\n    hash_val: "keep"\n    hash_type: "md5"\n'
        '  - path: "models/c.pt"\n    url: "https://x/c.pt"\n    hash_val: ""\n    hash_type: "sha256"\n'
    )
    assert pin_hashes(tmp_path) == ["models/a.pt"]
    text = (tmp_path / "large_files.yml").read_text()
    assert text.startswith("# comment kept") and f'hash_val: "{file_hash(tmp_path / "models" / "a.pt")}"' in text
    assert 'hash_val: "keep"' in text and text.count('hash_val: ""') == 1


def test_vista3d_inferer_stitches_on_the_cpu_after_a_cuda_out_of_memory():
    from types import SimpleNamespace

    from vila_m3_core.bundles.vista3d import stitch_on_cpu_when_out_of_memory

    calls = []

    def infer(**arguments):
        calls.append(arguments.get("device"))
        if "device" not in arguments:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return "stitched"

    on_gpu = SimpleNamespace(device=torch.device("cuda", 0))
    assert stitch_on_cpu_when_out_of_memory(infer, {"inputs": on_gpu}) == "stitched"
    assert calls == [None, torch.device("cpu")]
    with pytest.raises(torch.cuda.OutOfMemoryError):  # nothing to fall back to on the CPU
        stitch_on_cpu_when_out_of_memory(infer, {"inputs": SimpleNamespace(device=torch.device("cpu"))})
