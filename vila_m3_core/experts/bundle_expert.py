"""The part the segmentation experts share: their pipeline comes from their MONAI bundle, their weights are loaded
once into its network, and inference runs its inferer (AMP on CUDA only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vila_m3_core.devices import resolve_device
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.base import Expert
from vila_m3_core.experts.runtime import (
    REPOSITORY_BUNDLES_DIR,
    BundlePipeline,
    bundle_weights_path,
    load_state_dict,
    pipeline_from_bundle,
)


class BundleSegmentationExpert(Expert):
    """An expert that runs the ``expert_pipeline`` of bundle :attr:`bundle_name`.

    Args:
        bundle_dir: the expert bundle folder (default: this repository's ``bundles/<bundle_name>``); weights default
            to ``<bundle_dir>/models/model.pt``.
        weights: explicit checkpoint path (overrides ``bundle_dir``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        amp: mixed precision on CUDA (the bundles' default); ignored on CPU.
        pipeline: network, transforms and inferer; ``None`` reads the ``expert_pipeline`` of the bundle's
            ``configs/inference.json`` (the bundle passes its own).
        overrides: bundle config overrides applied when reading it (subclasses add their shortcuts to these).
    """

    #: the bundle folder name under ``bundles/`` (``expert_vista3d``)
    bundle_name: str
    #: the name used in messages (``VISTA3D``)
    display_name: str

    def __init__(
        self,
        bundle_dir: str | None,
        weights: str | None,
        device: str,
        amp: bool,
        pipeline: BundlePipeline | None,
        overrides: Mapping[str, Any],
    ) -> None:
        self.bundle_dir = str(bundle_dir or REPOSITORY_BUNDLES_DIR / self.bundle_name)
        self.weights = weights
        self.device = resolve_device(device)
        self.amp = amp
        if pipeline is None:
            pipeline = pipeline_from_bundle(self.bundle_name, self.bundle_dir, overrides, str(self.device))
        elif overrides:
            raise VilaM3Error(
                f"Config overrides ({', '.join(overrides)}) apply to the bundle's pipeline when it is read from the "
                "bundle; not with pipeline=."
            )
        self.pipeline = pipeline
        self._network: Any = None

    def load(self) -> Any:
        """Load the bundle checkpoint into the bundle's network (once)."""
        if self._network is None:
            path = bundle_weights_path(self.bundle_dir, self.weights, self.display_name)
            load_state_dict(path, self.pipeline.network_def)
            self._network = self.pipeline.network_def.to(self.device).eval()
        return self._network

    def infer(self, inputs: Any, **prompts: Any) -> Any:
        """The bundle's inferer on ``inputs`` ``(1, C, X, Y, Z)`` (moved to the device) -> logits ``(1, K, ...)``."""
        import torch

        network = self.load()
        use_amp = self.amp and self.device.type == "cuda"
        with torch.no_grad(), torch.autocast(self.device.type, enabled=use_amp):
            return self.pipeline.inferer(inputs.to(self.device), network, **prompts)
