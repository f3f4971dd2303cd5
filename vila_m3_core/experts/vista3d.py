"""VISTA3D expert: CT segmentation with MONAI's ``vista3d132`` network and the bundle's inference transforms.

Pipeline (VISTA3D bundle 0.5.4 ``inference.json``): Spacing 1.5 mm -> CropForeground -> intensity window
-963.8..1053.7 HU -> 0..1 -> orientation RAS -> sliding window (roi 128^3, overlap 0.3) with class prompts ->
``VistaPostTransformd`` -> inverted back to the original image grid (nearest) -> NIfTI.
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
from vila_m3_core.experts.rendering import RAS_LABELS, label_volumes_ml, render_segmentation, save_picture, to_ras
from vila_m3_core.experts.runtime import (
    Stopwatch,
    bundle_weights_path,
    load_state_dict,
    save_label_nifti,
)
from vila_m3_core.imaging.loading import CT, LoadedImage, load_any

logger = logging.getLogger(__name__)

INTENSITY_RANGE_HU = (-963.8, 1053.7)
_LESION_WORDS = ("tumor", "lesion", "cancer", "mass", "cyst")


def key_labels_for(group: str, label_ids: Sequence[int], seg: np.ndarray) -> list[int]:
    """Labels that choose the key slice: for a lesion group (``hepatic tumor``, ``bone lesion``, ...) the lesion
    labels when the segmentation contains any, else every requested label."""
    if any(word in group for word in _LESION_WORDS) or group == "hepatoma":
        lesions = [i for i in label_ids if any(w in labels.vista3d_label_name(i) for w in _LESION_WORDS)]
        if lesions and np.isin(seg, lesions).any():
            return lesions
    return list(label_ids)


def _foreground(image: Any) -> Any:
    """The bundle's crop mask (voxels above 0 HU), or everything when no voxel is: an empty crop would leave nothing
    to segment and crash the sliding window."""
    mask = image > 0
    return mask if bool(mask.any()) else image == image


class Vista3DExpert(Expert):
    """VISTA3D on CT volumes. The network is built and its weights loaded on first use, then kept.

    Args:
        bundle_dir: the expert bundle folder; weights default to ``<bundle_dir>/models/model.pt``.
        weights: explicit checkpoint path (overrides ``bundle_dir``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        roi_size: sliding-window patch (bundle: 128^3; small values make CPU tests fast).
        overlap: sliding-window overlap (0.3 per the bundle config).
        spacing_mm: resampling voxel size (bundle: 1.5 mm isotropic).
        sw_batch_size: windows per forward pass.
        amp: mixed precision on CUDA (the bundle's default); ignored on CPU.
        crop_margin: voxels kept around the foreground crop.
        colour_mode: ``"stable"`` or ``"reference"`` overlay colours.
        encoder_embed_dim: width of the network; 48 for the released bundle (tests use a narrower one).
        network: an already built network (tests, custom variants); skips weight loading.
    """

    name = "VISTA3D"

    def __init__(
        self,
        bundle_dir: str = "bundles/expert_vista3d",
        weights: str | None = None,
        device: str = "auto",
        roi_size: Sequence[int] = (128, 128, 128),
        overlap: float = 0.3,
        spacing_mm: float = 1.5,
        sw_batch_size: int = 1,
        amp: bool = True,
        crop_margin: int = 10,
        colour_mode: str = "stable",
        encoder_embed_dim: int = 48,
        network: Any = None,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.weights = weights
        self.device = resolve_device(device)
        self.roi_size = tuple(int(r) for r in roi_size)
        self.overlap = overlap
        self.spacing_mm = spacing_mm
        self.sw_batch_size = sw_batch_size
        self.amp = amp
        self.crop_margin = crop_margin
        self.colour_mode = colour_mode
        self.encoder_embed_dim = encoder_embed_dim
        self._network = network.to(self.device).eval() if network is not None else None

    def load(self) -> Any:
        """Build ``vista3d132`` and load the bundle checkpoint (once)."""
        if self._network is None:
            from monai.networks.nets import vista3d132

            path = bundle_weights_path(self.bundle_dir, self.weights, "VISTA3D")
            network = vista3d132(encoder_embed_dim=self.encoder_embed_dim, in_channels=1)
            load_state_dict(path, network)
            self._network = network.to(self.device).eval()
        return self._network

    def _preprocessing(self) -> Any:
        from monai.transforms import (
            CastToTyped,
            Compose,
            CropForegroundd,
            Orientationd,
            ScaleIntensityRanged,
            Spacingd,
        )

        low, high = INTENSITY_RANGE_HU
        return Compose(
            [
                Spacingd(keys="image", pixdim=[self.spacing_mm] * 3, mode="bilinear"),
                CropForegroundd(
                    keys="image", source_key="image", select_fn=_foreground, margin=self.crop_margin, allow_smaller=True
                ),
                ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
                Orientationd(keys="image", axcodes="RAS", labels=RAS_LABELS),
                CastToTyped(keys="image", dtype=np.float32),
            ]
        )

    def segment(self, image: LoadedImage, label_prompt: Sequence[int]) -> Any:
        """Segment ``label_prompt`` (VISTA3D ids, superclasses expanded) in a CT volume.

        Returns:
            a MetaTensor ``(1, X, Y, Z)`` of label ids on the original voxel grid of ``image`` (same affine).
        """
        import torch
        from monai.apps.vista3d.transforms import VistaPostTransformd
        from monai.inferers import SlidingWindowInfererAdapt
        from monai.transforms import Invertd

        network = self.load()
        preprocessing = self._preprocessing()
        sample = preprocessing({"image": image.data[:1].clone()})
        prompt = torch.tensor(list(label_prompt), dtype=torch.long, device=self.device)
        inferer = SlidingWindowInfererAdapt(
            roi_size=self.roi_size,
            sw_batch_size=self.sw_batch_size,
            overlap=self.overlap,
            with_coord=True,
            padding_mode="replicate",
        )
        use_amp = self.amp and self.device.type == "cuda"
        with torch.no_grad(), torch.autocast(self.device.type, enabled=use_amp):
            logits = inferer(
                sample["image"][None].to(self.device),
                network,
                transpose=True,
                class_vector=prompt,
                prompt_class=prompt,
                point_coords=None,
                point_labels=None,
            )
        sample["pred"] = logits[0].float()
        sample["label_prompt"] = prompt
        sample = VistaPostTransformd(keys="pred")(sample)
        sample["pred"] = sample["pred"].cpu()
        sample["image"] = sample["image"].cpu()
        restored = Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=True)(sample)
        return restored["pred"]

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
