"""Model-Zoo-style distribution: reproducible zips, model_info.json, and monai.bundle download/load against them."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import torch
from monai.bundle import download, download_large_files, load

from vila_m3_core.bundles.packaging import package_bundle, sha1sum, write_model_info
from vila_m3_core.bundles.runner import BUNDLES_DIR


def _release(tmp_path: Path, weights: Path) -> Path:
    """A copy of expert_brats whose large_files.yml points at local weights (file:// URL, sha256), zipped."""
    src = tmp_path / "src" / "expert_brats"
    shutil.copytree(BUNDLES_DIR / "expert_brats", src, ignore=shutil.ignore_patterns("*.pt", "eval"))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    (src / "large_files.yml").write_text(
        f'large_files:\n  - path: "models/model.pt"\n    url: "{weights.as_uri()}"\n'
        f'    hash_val: "{digest}"\n    hash_type: "sha256"\n'
    )
    return package_bundle(src, tmp_path / "release")


def test_archives_are_reproducible_and_named_like_the_zoo(tmp_path):
    first = package_bundle(BUNDLES_DIR / "vila_m3_8b", tmp_path / "a")
    second = package_bundle(BUNDLES_DIR / "vila_m3_8b", tmp_path / "b")
    assert first.name == "vila_m3_8b_v0.1.0.zip" and first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "vila_m3_8b/configs/metadata.json" in names and all(n.startswith("vila_m3_8b/") for n in names)
    assert not any("/eval/" in n or n.endswith(".db") for n in names)
    info = write_model_info([first], tmp_path / "model_info.json", "https://example.org/releases/v1")
    assert info == {
        "vila_m3_8b_v0.1.0": {
            "checksum": sha1sum(first),
            "source": "https://example.org/releases/v1/vila_m3_8b_v0.1.0.zip",
        }
    }


def test_download_large_files_and_load_from_a_local_release(tmp_path, brats_ckpt):
    archive = _release(tmp_path, brats_ckpt)
    bundle_dir = tmp_path / "hub"
    download(name="expert_brats", version="0.1.0", bundle_dir=str(bundle_dir), url=archive.as_uri())
    bundle = bundle_dir / "expert_brats"
    assert (bundle / "configs" / "inference.json").is_file() and not (bundle / "models" / "model.pt").exists()
    download_large_files(bundle_path=str(bundle))
    assert (bundle / "models" / "model.pt").read_bytes() == brats_ckpt.read_bytes()
    network = load(
        name="expert_brats", bundle_dir=str(bundle_dir), workflow_type="inference", source="github", version="0.1.0"
    )
    expected = torch.load(brats_ckpt, weights_only=True)
    assert isinstance(network, torch.nn.Module)
    for key, value in network.state_dict().items():
        assert torch.equal(value.cpu(), expected[key])


def test_github_source_requests_the_zoo_asset_name(tmp_path, brats_ckpt, monkeypatch):
    archive = _release(tmp_path, brats_ckpt)
    requested = []
    import monai.bundle.scripts as scripts

    real = scripts.download_url

    def local_download(url, filepath="", **kwargs):
        requested.append(url)
        return real(url=archive.as_uri(), filepath=filepath, **kwargs)

    monkeypatch.setattr(scripts, "download_url", local_download)
    download(
        name="expert_brats",
        version="0.1.0",
        bundle_dir=str(tmp_path / "gh"),
        source="github",
        repo="example/vila-m3/v0.1.0",
    )
    assert requested == ["https://github.com/example/vila-m3/releases/download/v0.1.0/expert_brats_v0.1.0.zip"]
    assert (
        json.loads((tmp_path / "gh" / "expert_brats" / "configs" / "metadata.json").read_text())["version"] == "0.1.0"
    )
