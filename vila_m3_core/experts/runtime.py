"""Shared plumbing of the expert runners: their pipeline from the expert bundle, checkpoint loading,
missing-weights messages, timing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

#: this repository's bundles; the expert's pipeline is read from here when its bundle_dir holds only weights
REPOSITORY_BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


@dataclass
class BundlePipeline:
    """What an expert runs, as its bundle's ``configs/inference.json`` defines it (the ``expert_pipeline`` item).

    Attributes:
        network_def: the network architecture, weights not loaded yet.
        preprocessing: dict transform on ``{"image": MetaTensor (C, X, Y, Z), ...}`` after loading (the bundle's
            ``preprocessing_transforms``; the bundle's own loading transforms come before them).
        inferer: ``inferer(inputs (1, C, X, Y, Z), network, **prompts) -> logits (1, K, X, Y, Z)``.
        postprocessing: dict transform on the sample with ``"pred"`` (the logits of one item) -> labels.
    """

    network_def: Any
    preprocessing: Callable[[dict[str, Any]], dict[str, Any]]
    inferer: Callable[..., Any]
    postprocessing: Callable[[dict[str, Any]], dict[str, Any]]


def pipeline_from_bundle(
    bundle_name: str,
    bundle_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> BundlePipeline:
    """The ``expert_pipeline`` of an expert bundle's inference config, with config ``overrides``.

    The config is read from ``bundle_dir`` when it defines one; otherwise (a folder with only ``models/``, or a
    Model Zoo bundle such as ``vista3d`` whose config has no ``expert_pipeline``) from this repository's
    ``bundles/<bundle_name>``, with ``bundle_root`` still ``bundle_dir`` so that its weights are used.
    """
    from vila_m3_core.bundle_config import parsed_item, read_bundle_config

    own_config = Path(bundle_dir) / "configs" / "inference.json"
    config_dir = Path(bundle_dir) if _defines_expert_pipeline(own_config) else REPOSITORY_BUNDLES_DIR / bundle_name
    parser = read_bundle_config(config_dir, overrides, device, bundle_root=bundle_dir)
    return parsed_item(parser, "expert_pipeline", config_dir / "configs" / "inference.json")


def _defines_expert_pipeline(config_file: Path) -> bool:
    if not config_file.is_file():
        return False
    from monai.bundle import ConfigParser

    try:
        return "expert_pipeline" in ConfigParser.load_config_file(str(config_file))
    except Exception as err:  # noqa: BLE001 - any unreadable config: use the released pipeline, say so
        logger.warning("cannot read %s (%s); using this repository's expert pipeline instead", config_file, err)
        return False


def bundle_weights_path(bundle_dir: str | Path, weights: str | Path | None, bundle_name: str) -> Path:
    """Where a MONAI-bundle expert finds its checkpoint: ``weights`` if given, else ``<bundle_dir>/models/model.pt``.

    Raises:
        VilaM3Error: when the file is missing; the message says how to download it.
    """
    path = Path(weights) if weights is not None else Path(bundle_dir) / "models" / "model.pt"
    if not path.is_file():
        raise VilaM3Error(
            f"{bundle_name} weights not found at {path}. They are listed in the bundle's large_files.yml; "
            f"download them with `python -m monai.bundle download_large_files --bundle_path {bundle_dir}` "
            f"(or pass weights=<path to model.pt>)."
        )
    return path


def load_state_dict(path: str | Path, network: Any) -> None:
    """Load a checkpoint into ``network``: a plain state dict, or one wrapped as {"model"|"state_dict"|...: ...}.

    ``module.`` prefixes left by DataParallel/DDP are removed. A mismatching checkpoint is a user error.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem means a bad file
        raise VilaM3Error(f"Cannot read the checkpoint {path}: {err}") from err
    for key in ("model", "state_dict", "network", "net"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise VilaM3Error(f"{path} does not hold a state dict (got {type(checkpoint).__name__}).")
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise VilaM3Error(f"The checkpoint {path} does not fit the {type(network).__name__} network: {err}") from err


def save_label_nifti(labels: Any, affine: Any, path: str | Path) -> str:
    """Save a uint8 label volume ``(X, Y, Z)`` with the 4x4 voxel-to-RAS ``affine`` of its image as NIfTI."""
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), np.asarray(affine, dtype=np.float64)), str(path))
    return str(path)


class Stopwatch:
    """Collects the seconds spent in named phases: ``with watch("inference"): ...`` -> ``watch.seconds``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start
