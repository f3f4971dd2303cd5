"""Shared fixtures: tiny random-weight checkpoints in the released layout (built once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vila_m3_core.model.tiny import random_image


@pytest.fixture(scope="session")
def tiny_vicuna(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3B/13B-style checkpoint: SentencePiece tokenizer, vicuna_v1 template."""
    from vila_m3_core.model import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-vicuna", flavor="vicuna")


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8B-style checkpoint: Llama-3 special tokens, byte-level BPE, llama_3 template."""
    from vila_m3_core.model import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama3", flavor="llama3")


@pytest.fixture(scope="session")
def vicuna_model(tiny_vicuna: Path):
    from vila_m3_core.model import VilaM3

    return VilaM3.from_pretrained(tiny_vicuna, device="cpu")


@pytest.fixture(scope="session")
def llama3_model(tiny_llama3: Path):
    from vila_m3_core.model import VilaM3

    return VilaM3.from_pretrained(tiny_llama3, device="cpu")


@pytest.fixture
def sample_png(tmp_path: Path) -> Path:
    path = tmp_path / "sample.png"
    random_image(1).save(path)
    return path
