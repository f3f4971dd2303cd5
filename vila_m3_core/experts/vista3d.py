"""VISTA3D expert: CT segmentation with MONAI's ``vista3d132`` network, run with the ``expert_vista3d`` bundle's
pipeline (``configs/inference.json``, following the Zoo's vista3d 0.5.4): Spacing 1.5 mm -> CropForeground ->
intensity window -963.8..1053.7 HU -> 0..1 -> orientation RAS -> sliding window (roi 128^3, overlap 0.3) with class
prompts -> ``VistaPostTransformd`` -> inverted back to the original image grid (nearest) -> NIfTI.
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
from vila_m3_core.imaging.loading import CT, LoadedImage, load_any

logger = logging.getLogger(__name__)

_LESION_WORDS = ("tumor", "lesion", "cancer", "mass", "cyst")


def key_labels_for(group: str, label_ids: Sequence[int], seg: np.ndarray) -> list[int]:
    """Labels that choose the key slice: for a lesion group (``hepatic tumor``, ``bone lesion``, ...) the lesion
    labels when the segmentation contains any, else every requested label."""
    if any(word in group for word in _LESION_WORDS) or group == "hepatoma":
        lesions = [i for i in label_ids if any(w in labels.vista3d_label_name(i) for w in _LESION_WORDS)]
        if lesions and np.isin(seg, lesions).any():
            return lesions
    return list(label_ids)


def foreground_or_all(image: Any) -> Any:
    """Crop mask of the bundle's ``CropForegroundd``: voxels above 0 HU, or every voxel when none is (an empty crop
    would leave nothing to segment and crash the sliding window)."""
    mask = image > 0
    return mask if bool(mask.any()) else image == image


class Vista3DExpert(BundleSegmentationExpert):
    """VISTA3D on CT volumes, run with the ``expert_vista3d`` bundle's own pipeline. The network's weights are loaded
    on first use, then kept.

    Args:
        bundle_dir, weights, device, amp, pipeline: see :class:`BundleSegmentationExpert`.
        roi_size: sliding-window patch (``patch_size`` in the bundle: 128^3; small values make CPU tests fast).
        encoder_embed_dim: width of the network (bundle: 48; tests use a narrower one).
        colour_mode: ``"stable"`` or ``"reference"`` overlay colours.
        config_overrides: further bundle config overrides (``{"resample_spacing": [2, 2, 2]}``) when reading it.
    """

    name = "VISTA3D"
    bundle_name = "expert_vista3d"
    display_name = "VISTA3D"

    def __init__(
        self,
        bundle_dir: str | None = None,
        weights: str | None = None,
        device: str = "auto",
        roi_size: Sequence[int] | None = None,
        encoder_embed_dim: int | None = None,
        amp: bool = True,
        colour_mode: str = "stable",
        pipeline: BundlePipeline | None = None,
        config_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        knobs = {"patch_size": None if roi_size is None else list(roi_size), "encoder_embed_dim": encoder_embed_dim}
        overrides = {**{k: v for k, v in knobs.items() if v is not None}, **(config_overrides or {})}
        super().__init__(bundle_dir, weights, device, amp, pipeline, overrides)
        self.colour_mode = colour_mode

    def segment(self, image: LoadedImage, label_prompt: Sequence[int]) -> Any:
        """Segment ``label_prompt`` (VISTA3D ids, superclasses expanded) in a CT volume.

        Returns:
            a MetaTensor ``(1, X, Y, Z)`` of label ids on the original voxel grid of ``image`` (same affine).
        """
        import torch
        from monai.transforms import Invertd

        prompt = torch.tensor(list(label_prompt), dtype=torch.long, device=self.device)
        # the prompt is already expanded from the label data (labels.expand_label_prompt): the bundle's
        # VistaPreTransformd, which expands prompts from the config's "subclass", gets none to expand again
        sample = self.pipeline.preprocessing({"image": image.data[:1].clone()})
        sample["pred"] = self.infer(sample["image"][None], class_vector=prompt)[0].float()
        sample["label_prompt"] = prompt
        sample = self.pipeline.postprocessing(sample)
        sample["pred"] = sample["pred"].cpu()
        sample["image"] = sample["image"].cpu()
        invert = Invertd(keys="pred", transform=self.pipeline.preprocessing, orig_keys="image", nearest_interp=True)
        return invert(sample)["pred"]

    def run(self, request: ExpertRequest) -> ExpertResult:
        """Segment the requested label group, save the segmentation NIfTI and the overlay, return the feedback."""
        watch = Stopwatch()
        group = labels.normalise_group_name(request.args)
        requested = labels.group_label_ids(group)
        with watch("load"):
            image = request.volume if isinstance(request.volume, LoadedImage) else load_any(request.image, CT)
            if not image.is_3d:
                raise VilaM3Error(
                    f"VISTA3D needs a 3D CT volume (NIfTI, NRRD or a DICOM series); {image.source} is 2D."
                )
            self.load()
        prompt = labels.expand_label_prompt(requested)
        with watch("inference"):
            seg = self.segment(image, prompt)
        with watch("rendering"):
            from monai.data import MetaTensor

            out_dir = Path(request.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            tag = uuid.uuid4().hex[:8]
            seg_np = np.asarray(seg[0].numpy()).round().astype(np.uint8)
            seg_path = out_dir / f"vista3d_seg_{tag}.nii.gz"
            save_label_nifti(seg_np, image.affine, seg_path)
            seg_meta = MetaTensor(seg_np[None].astype(np.float32), affine=image.data.affine)
            image_ras = to_ras(image.data[:1])[0]
            label_ras = to_ras(seg_meta)[0].round().astype(np.int32)
            view = render_segmentation(
                image_ras,
                CT,
                label_ras,
                request.slice_index,
                labels.palette("vista3d"),
                labels.vista3d_label_name,
                key_labels=key_labels_for(group, prompt, label_ras),
                colour_mode=self.colour_mode,
            )
            overlay_path = save_picture(view.image, out_dir / f"vista3d_overlay_{tag}.jpg")
        volumes = label_volumes_ml(seg_np, image.spacing)
        return ExpertResult(
            text=feedback.vista3d_feedback(view.legend),
            images=[view.image],
            # The "segmented" rule (no answer round) is the agent's to apply, configurably, in one place.
            instruction=feedback.instruction(request.prompt),
            files={"segmentation": str(seg_path), "overlay": overlay_path},
            seconds=watch.seconds,
            data={
                "group": group,
                "label_prompt": prompt,
                "slice_index": view.slice_index,
                "num_slices": view.depth,
                "labels_in_slice": view.labels_in_slice,
                "legend": [list(pair) for pair in view.legend],
                "volumes_ml": {labels.vista3d_label_name(k): round(v, 3) for k, v in sorted(volumes.items())},
            },
        )


register_expert("VISTA3D", Vista3DExpert)
