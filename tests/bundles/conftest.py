"""Fixtures of the bundle tests: tiny synthetic inputs and random weights (real architectures), built once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vila_m3_core.bundles import synthetic


@pytest.fixture(scope="session")
def brats_datalist(tmp_path_factory) -> Path:
    return synthetic.write_brats_dataset(tmp_path_factory.mktemp("brats"), cases=2)


@pytest.fixture(scope="session")
def brats_images(brats_datalist) -> list[str]:
    return json.loads(brats_datalist.read_text())["validation"][0]["image"]


@pytest.fixture(scope="session")
def ct_image(tmp_path_factory) -> str:
    datalist = synthetic.write_ct_dataset(tmp_path_factory.mktemp("ct"), cases=1)
    return json.loads(datalist.read_text())["training"][0]["image"]


@pytest.fixture(scope="session")
def cxr_dir(tmp_path_factory) -> Path:
    return synthetic.write_cxr_dataset(tmp_path_factory.mktemp("cxr"), images=2)


@pytest.fixture(scope="session")
def cxr_png(cxr_dir) -> str:
    return str(cxr_dir / "cxr0.png")


@pytest.fixture(scope="session")
def brats_ckpt(tmp_path_factory) -> Path:
    return synthetic.write_brats_weights(tmp_path_factory.mktemp("w") / "brats.pt")


@pytest.fixture(scope="session")
def vista3d_ckpt(tmp_path_factory) -> Path:
    return synthetic.write_vista3d_weights(tmp_path_factory.mktemp("w") / "vista3d.pt", encoder_embed_dim=8)


@pytest.fixture(scope="session")
def xrv_dir(tmp_path_factory) -> Path:
    return synthetic.write_xrv_weights(tmp_path_factory.mktemp("xrv"))
