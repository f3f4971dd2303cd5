"""BraTS expert: brain-tumour segmentation of four MRI sequences with the MONAI BraTS bundle's SegResNet.

Pipeline (``brats_mri_segmentation`` 0.5.2): channels t1ce, t1, t2, flair -> NormalizeIntensity(nonzero,
channel_wise) -> sliding window 240x240x160, overlap 0.5 -> sigmoid > 0.5 -> channels TC/WT/ET merged into
labels 4 (ET), else 1 (TC), else 2 (WT). No resampling: the output is on the input grid.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vila_m3_core.devices import resolve_device
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback, labels
from vila_m3_core.experts.base import Expert, ExpertRequest, ExpertResult, register_expert
from vila_m3_core.experts.rendering import label_volumes_ml, render_segmentation, save_picture, to_ras
from vila_m3_core.experts.runtime import (
    Stopwatch,
    bundle_weights_path,
    load_state_dict,
    save_label_nifti,
)
from vila_m3_core.imaging.loading import MRI, MRI_SEQUENCE_ORDER, LoadedImage, load_any

logger = logging.getLogger(__name__)


def build_segresnet() -> Any:
    """The bundle's network: SegResNet(blocks_down [1,2,2,4], blocks_up [1,1,1], 16 filters, 4 in, 3 out)."""
    from monai.networks.nets import SegResNet

    return SegResNet(
        blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2
    )


def merge_brats_channels(probabilities: Any, threshold: float = 0.5) -> np.ndarray:
    """``(3, X, Y, Z)`` sigmoid outputs [TC, WT, ET] -> ``(X, Y, Z)`` uint8 labels: 4 = ET, else 1 = TC, else 2 = WT."""
    channels = np.asarray(probabilities) > threshold
    tc, wt, et = channels[0], channels[1], channels[2]
    return np.where(et, 4, np.where(tc, 1, np.where(wt, 2, 0))).astype(np.uint8)


class BratsExpert(Expert):
    """BraTS SegResNet on four co-registered MRI sequences. The network is loaded on first use and kept.

    Args:
        bundle_dir: the expert bundle folder; weights default to ``<bundle_dir>/models/model.pt``.
        weights: explicit checkpoint path (overrides ``bundle_dir``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        roi_size: sliding-window patch (bundle: 240x240x160; each side must be divisible by 8).
        overlap: sliding-window overlap (bundle: 0.5).
        amp: mixed precision on CUDA (the bundle's default); ignored on CPU.
        training_order: write "yellow and red" (training data) instead of the demo's "red and yellow".
        colour_mode: ``"stable"`` or ``"reference"`` overlay colours.
        network: an already built network (tests); skips weight loading.
    """

    name = "BRATS"

    def __init__(
        self,
        bundle_dir: str = "bundles/expert_brats",
        weights: str | None = None,
        device: str = "auto",
        roi_size: Sequence[int] = (240, 240, 160),
        overlap: float = 0.5,
        amp: bool = True,
        training_order: bool = False,
        colour_mode: str = "stable",
        network: Any = None,
    ) -> None:
        if any(int(r) % 8 for r in roi_size):
            raise VilaM3Error(f"BraTS roi_size sides must be divisible by 8 (SegResNet); got {tuple(roi_size)}.")
        self.bundle_dir = bundle_dir
        self.weights = weights
        self.device = resolve_device(device)
        self.roi_size = tuple(int(r) for r in roi_size)
        self.overlap = overlap
        self.amp = amp
        self.training_order = training_order
        self.colour_mode = colour_mode
        self._network = network.to(self.device).eval() if network is not None else None

    def load(self) -> Any:
        """Build the SegResNet and load the bundle checkpoint (once)."""
        if self._network is None:
            path = bundle_weights_path(self.bundle_dir, self.weights, "BraTS")
            network = build_segresnet()
            load_state_dict(path, network)
            self._network = network.to(self.device).eval()
        return self._network

    def segment(self, image: LoadedImage) -> np.ndarray:
        """Segment a ``(4, X, Y, Z)`` volume (t1ce, t1, t2, flair) -> ``(X, Y, Z)`` uint8 labels {0, 1, 2, 4}."""
        import torch
        from monai.inferers import SlidingWindowInferer
        from monai.transforms import NormalizeIntensity

        network = self.load()
        volume = NormalizeIntensity(nonzero=True, channel_wise=True)(image.data.as_tensor().float())
        inferer = SlidingWindowInferer(roi_size=self.roi_size, sw_batch_size=1, overlap=self.overlap)
        use_amp = self.amp and self.device.type == "cuda"
        with torch.no_grad(), torch.autocast(self.device.type, enabled=use_amp):
            logits = inferer(volume[None].to(self.device), network)
        return merge_brats_channels(torch.sigmoid(logits[0].float()).cpu().numpy())

    def run(self, request: ExpertRequest) -> ExpertResult:
        """Segment the tumour, save the segmentation NIfTI and the overlay on t1ce, return the feedback."""
        watch = Stopwatch()
        with watch("load"):
            image = request.volume if isinstance(request.volume, LoadedImage) else load_any(request.image, MRI)
            _check_sequences(image)
            self.load()
        with watch("inference"):
            seg = self.segment(image)
        with watch("rendering"):
            from monai.data import MetaTensor

            out_dir = Path(request.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            tag = uuid.uuid4().hex[:8]
            seg_path = out_dir / f"brats_seg_{tag}.nii.gz"
            save_label_nifti(seg, image.affine, seg_path)
            seg_meta = MetaTensor(seg[None].astype(np.float32), affine=image.data.affine)
            t1ce_ras = to_ras(image.data[:1])[0]
            label_ras = to_ras(seg_meta)[0].round().astype(np.int32)
            brats_colours = labels.palette("brats")
            view = render_segmentation(
                t1ce_ras,
                MRI,
                label_ras,
                request.slice_index,
                brats_colours,
                labels.BRATS_LABEL_NAMES.__getitem__,
                key_labels=(1, 2, 4),
                colour_mode=self.colour_mode,
            )
            overlay_path = save_picture(view.image, out_dir / f"brats_overlay_{tag}.jpg")
        colours = dict(zip(view.labels_in_slice, (colour for colour, _ in view.legend)))
        volumes = label_volumes_ml(seg, image.spacing)
        regions = {
            "tumor core": volumes.get(1, 0.0) + volumes.get(4, 0.0),
            "whole tumor": sum(volumes.values()),
            "enhancing tumor": volumes.get(4, 0.0),
        }
        return ExpertResult(
            text=feedback.brats_feedback(view.labels_in_slice, colours, self.training_order),
            images=[view.image],
            # The "segmented" rule (no answer round) is the agent's to apply, configurably, in one place.
            instruction=feedback.instruction(request.prompt),
            files={"segmentation": str(seg_path), "overlay": overlay_path},
            seconds=watch.seconds,
            data={
                "slice_index": view.slice_index,
                "num_slices": view.depth,
                "labels_in_slice": view.labels_in_slice,
                "legend": [list(pair) for pair in view.legend],
                "volumes_ml": {labels.BRATS_LABEL_NAMES[k]: round(v, 3) for k, v in sorted(volumes.items())},
                "regions_ml": {k: round(v, 3) for k, v in regions.items()},
            },
        )


def _check_sequences(image: LoadedImage) -> None:
    if not image.is_3d:
        raise VilaM3Error(f"BraTS needs 3D MRI volumes; {image.source} is a 2D image.")
    if image.data.shape[0] != len(MRI_SEQUENCE_ORDER):
        raise VilaM3Error(
            f"BraTS needs {len(MRI_SEQUENCE_ORDER)} MRI sequences in the order {', '.join(MRI_SEQUENCE_ORDER)}; "
            f"got {image.data.shape[0]} channel(s) from {image.source}."
        )


register_expert("BRATS", BratsExpert)
