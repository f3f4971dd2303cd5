"""BraTS expert: brain-tumour segmentation of four MRI sequences with the MONAI BraTS bundle's SegResNet.

The pipeline is the ``expert_brats`` bundle's (``configs/inference.json``, following ``brats_mri_segmentation``
0.5.2): channels t1ce, t1, t2, flair -> NormalizeIntensity(nonzero, channel_wise) -> sliding window 240x240x160,
overlap 0.5 -> sigmoid > 0.5 -> channels TC/WT/ET merged into labels 4 (ET), else 1 (TC), else 2 (WT). No
resampling: the output is on the input grid.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback, labels
from vila_m3_core.experts.base import ExpertRequest, ExpertResult, register_expert
from vila_m3_core.experts.bundle_expert import BundleSegmentationExpert
from vila_m3_core.experts.rendering import label_volumes_ml, render_segmentation, save_picture, to_ras
from vila_m3_core.experts.runtime import BundlePipeline, Stopwatch, save_label_nifti
from vila_m3_core.imaging.loading import MRI, MRI_SEQUENCE_ORDER, LoadedImage, load_any

logger = logging.getLogger(__name__)


def merge_brats_channels(channels: Any) -> Any:
    """Thresholded ``(3, X, Y, Z)`` channels [TC, WT, ET] -> ``(1, X, Y, Z)`` labels: 4 = ET, else 1 = TC, else
    2 = WT, else 0 (the BraTS label convention; the channels are nested, ET inside TC inside WT)."""
    import torch

    tc, wt, et = channels[0:1] > 0, channels[1:2] > 0, channels[2:3] > 0
    return torch.where(et, 4, torch.where(tc, 1, torch.where(wt, 2, 0)))


class BratsExpert(BundleSegmentationExpert):
    """BraTS SegResNet on four co-registered MRI sequences, run with the ``expert_brats`` bundle's own pipeline.

    Args:
        bundle_dir, weights, device, amp, pipeline: see :class:`BundleSegmentationExpert`.
        roi_size: sliding-window patch; ``None`` keeps the bundle's 240x240x160 (each side divisible by 8).
        training_order: write "yellow and red" (training data) instead of the demo's "red and yellow".
        colour_mode: ``"stable"`` or ``"reference"`` overlay colours.
        config_overrides: further bundle config overrides (``{"inferer#overlap": 0.25}``) when reading it.
    """

    name = "BRATS"
    bundle_name = "expert_brats"
    display_name = "BraTS"

    def __init__(
        self,
        bundle_dir: str | None = None,
        weights: str | None = None,
        device: str = "auto",
        roi_size: Sequence[int] | None = None,
        amp: bool = True,
        training_order: bool = False,
        colour_mode: str = "stable",
        pipeline: BundlePipeline | None = None,
        config_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        overrides = {**({"roi_size": list(roi_size)} if roi_size is not None else {}), **(config_overrides or {})}
        super().__init__(bundle_dir, weights, device, amp, pipeline, overrides)
        self.training_order = training_order
        self.colour_mode = colour_mode
        roi = tuple(int(r) for r in getattr(self.pipeline.inferer, "roi_size", None) or ())
        if any(r % 8 for r in roi):
            raise VilaM3Error(f"BraTS roi_size sides must be divisible by 8 (SegResNet); got {roi}.")

    def segment(self, image: LoadedImage) -> np.ndarray:
        """Segment a ``(4, X, Y, Z)`` volume (t1ce, t1, t2, flair) -> ``(X, Y, Z)`` uint8 labels {0, 1, 2, 4}."""
        import torch

        sample = self.pipeline.preprocessing({"image": image.data.clone()})
        sample["pred"] = self.infer(sample["image"][None])[0].float()
        labels_map = self.pipeline.postprocessing(sample)["pred"]
        return np.asarray(torch.as_tensor(labels_map)[0].cpu().numpy()).astype(np.uint8)

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
