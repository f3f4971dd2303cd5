"""Turn 3D volumes and segmentations into the 2D pictures and colour legends the VLM sees.

Conventions exactly as the reference (``agent_protocol.md`` §4.4), which the released checkpoints were trained on:
RAS orientation, axial slices along axis 2, CT window centre 50 / width 400 HU mapped to 0..255, MRI per-volume
min-max to 0..255, cast to uint8, then transpose + 180-degree rotation (radiological view: anterior up, patient's
right on the viewer's left). Overlays use ``skimage.color.label2rgb`` with alpha 0.3 as the reference did.

What changed (docs/experts.md): a stable colour per label id instead of per-slice cycling, the slice count taken
from the reoriented volume, label volumes over the whole volume, and key-slice selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.labels import reference_colours
from vila_m3_core.imaging.loading import CT, MRI, LoadedImage

#: axis labels of RAS as the reference's MONAI versions read them (pinned: MONAI 1.6 is changing the default)
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
CT_WINDOW_CENTER = 50.0
CT_WINDOW_WIDTH = 400.0
OVERLAY_ALPHA = 0.3


# ----------------------------------------------------------------------------------------- orientation, scaling
def to_ras(volume: Any) -> np.ndarray:
    """Reorient a channel-first MetaTensor ``(C, X, Y, Z)`` to RAS and return it as numpy ``(C, X', Y', Z')``."""
    from monai.transforms import Orientation

    if volume.ndim != 4:
        raise VilaM3Error(f"Expected a channel-first 3D volume (C, X, Y, Z); got shape {tuple(volume.shape)}.")
    return np.asarray(Orientation(axcodes="RAS", labels=RAS_LABELS)(volume).detach().cpu().numpy())


def window_ct(volume: np.ndarray, center: float = CT_WINDOW_CENTER, width: float = CT_WINDOW_WIDTH) -> np.ndarray:
    """Map HU through the window ``[center - width/2, center + width/2]`` to 0..255, clip, cast to uint8 (truncating,
    as the reference's ``astype``)."""
    low = center - width / 2.0
    scaled = (np.asarray(volume, dtype=np.float32) - low) / width * 255.0
    return np.clip(scaled, 0.0, 255.0).astype(np.uint8)


def scale_min_max(volume: np.ndarray) -> np.ndarray:
    """Per-volume min-max to 0..255 uint8 (the reference's MRI scaling, ``ScaleIntensity(minv=0, maxv=255)``)."""
    volume = np.asarray(volume, dtype=np.float32)
    low, high = float(volume.min()), float(volume.max())
    if high <= low:
        return np.zeros(volume.shape, dtype=np.uint8)
    return ((volume - low) / (high - low) * 255.0).astype(np.uint8)


def scale_for_display(volume: np.ndarray, modality: str | None) -> np.ndarray:
    """CT window for ``"CT"``, min-max for ``"MRI"``; other modalities are not 3D-renderable (as the reference)."""
    if modality == CT:
        return window_ct(volume)
    if modality == MRI:
        return scale_min_max(volume)
    raise VilaM3Error(f"Cannot render a 3D slice for modality {modality!r}: pass modality 'CT' or 'MRI'.")


def axial_slice(volume_ras: np.ndarray, index: int) -> np.ndarray:
    """Axial slice ``index`` of a RAS volume ``(X, Y, Z)`` in radiological view: take axis 2, transpose, rotate 180.

    Returns:
        ``(Y, X)`` array: row 0 is anterior, column 0 is the patient's right.
    """
    if volume_ras.ndim != 3:
        raise VilaM3Error(f"Expected a 3D volume (X, Y, Z); got shape {volume_ras.shape}.")
    return np.rot90(np.take(volume_ras, index, axis=2).T, k=2)


# ------------------------------------------------------------------------------------------------ slice choice
def key_slice(label_ras: np.ndarray, label_ids: Iterable[int]) -> int | None:
    """The axial index with the largest area of ``label_ids`` in a RAS label volume ``(X, Y, Z)``; None if absent.

    Ties go to the lowest index.
    """
    ids = np.asarray(sorted({int(i) for i in label_ids}))
    if ids.size == 0:
        return None
    area = np.isin(label_ras, ids).sum(axis=(0, 1))
    return int(np.argmax(area)) if area.max() > 0 else None


def resolve_slice_index(
    slice_index: int | str,
    depth: int,
    label_ras: np.ndarray | None = None,
    key_labels: Iterable[int] = (),
) -> int:
    """Turn ``slice_index`` (an int, a digit string, ``"middle"`` or ``"auto"``) into an axial index in ``[0, depth)``.

    ``"auto"`` picks :func:`key_slice` of ``key_labels`` in ``label_ras`` and falls back to the middle slice.

    Raises:
        VilaM3Error: an index outside the volume or an unknown keyword.
    """
    middle = depth // 2
    if isinstance(slice_index, str):
        word = slice_index.strip().lower()
        if word == "middle":
            return middle
        if word == "auto":
            found = key_slice(label_ras, key_labels) if label_ras is not None else None
            return middle if found is None else found
        if word.lstrip("-").isdigit():
            slice_index = int(word)
        else:
            raise VilaM3Error(f"slice_index must be an integer, 'middle' or 'auto'; got {slice_index!r}.")
    index = int(slice_index)
    if not 0 <= index < depth:
        raise VilaM3Error(f"Slice {index} is outside the volume: it has {depth} axial slices (0..{depth - 1}).")
    return index


# ------------------------------------------------------------------------------------------------ colours, legend
def assign_colours(label_ids: Iterable[int], palette: Mapping[int, str], mode: str = "stable") -> dict[int, str]:
    """Colour name per label id.

    Args:
        label_ids: the labels to colour.
        palette: the stable id -> colour table (``labels.palette("vista3d" | "brats")``).
        mode: ``"stable"`` (default): the palette's colour, the same in every slice and volume. ``"reference"``:
            the reference's behaviour (colours of its 16-colour tuple handed out to the given labels in ascending
            id order, cycling), kept to reproduce the training overlays.
    """
    ids = sorted({int(i) for i in label_ids})
    if mode == "reference":
        cycle = reference_colours()
        return {label: cycle[k % len(cycle)] for k, label in enumerate(ids)}
    if mode != "stable":
        raise ValueError(f"mode must be 'stable' or 'reference', not {mode!r}")
    missing = [i for i in ids if i not in palette]
    if missing:
        raise VilaM3Error(f"No colour defined for label id(s) {missing}.")
    return {label: palette[label] for label in ids}


def build_legend(
    label_ids: Iterable[int], colours: Mapping[int, str], name_of: Callable[[int], str]
) -> list[tuple[str, str]]:
    """``[(colour, name), ...]`` in ascending label id order (the reference's order)."""
    return [(colours[i], name_of(i)) for i in sorted({int(i) for i in label_ids})]


def present_labels(label_plane: np.ndarray) -> list[int]:
    """Sorted non-zero label values in an array."""
    values = np.unique(np.asarray(label_plane))
    return [int(v) for v in values if v != 0]


def label_volumes_ml(label_volume: np.ndarray, spacing_mm: Sequence[float]) -> dict[int, float]:
    """Volume in millilitres of every non-zero label of a whole volume ``(X, Y, Z)`` with voxel size ``spacing_mm``."""
    voxel_ml = float(np.prod(np.asarray(spacing_mm, dtype=np.float64))) / 1000.0
    values, counts = np.unique(np.asarray(label_volume), return_counts=True)
    return {int(v): float(c) * voxel_ml for v, c in zip(values, counts) if v != 0}


# ------------------------------------------------------------------------------------------------ pictures
def grey_picture(plane: np.ndarray) -> Image.Image:
    """A uint8 ``(rows, cols)`` plane as a 3-channel grey PIL image (what the reference saved as JPEG)."""
    plane = np.ascontiguousarray(plane, dtype=np.uint8)
    return Image.fromarray(np.stack([plane] * 3, axis=-1), mode="RGB")


def overlay_picture(plane: np.ndarray, label_plane: np.ndarray, colours: Mapping[int, str]) -> Image.Image:
    """Blend a label plane on a uint8 grey plane with ``skimage.color.label2rgb`` (alpha 0.3, background 0).

    ``label2rgb`` hands its colour list to the present labels in ascending order, so passing the colours of the
    present labels in that order draws each label in its own ``colours[label]``.
    """
    from skimage.color import label2rgb

    ids = present_labels(label_plane)
    if not ids:
        return grey_picture(plane)
    blended = label2rgb(
        np.asarray(label_plane, dtype=np.int32),
        image=np.asarray(plane, dtype=np.uint8),
        colors=[colours[i] for i in ids],
        alpha=OVERLAY_ALPHA,
        bg_label=0,
    )
    return Image.fromarray(np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="RGB")


@dataclass
class SliceView:
    """One rendered axial slice of a segmented volume.

    Attributes:
        image: the overlay picture (PIL RGB), or the plain grey slice when ``label`` was not given.
        slice_index: the axial index in the RAS volume.
        depth: number of axial slices.
        labels_in_slice: label ids visible in this slice (ascending).
        legend: ``[(colour, name), ...]`` of the labels in this slice.
    """

    image: Image.Image
    slice_index: int
    depth: int
    labels_in_slice: list[int]
    legend: list[tuple[str, str]]


def render_segmentation(
    image_ras: np.ndarray,
    modality: str,
    label_ras: np.ndarray,
    slice_index: int | str,
    palette: Mapping[int, str],
    name_of: Callable[[int], str],
    key_labels: Iterable[int] = (),
    colour_mode: str = "stable",
) -> SliceView:
    """Render a segmentation over its image, both RAS ``(X, Y, Z)`` arrays of equal shape.

    Args:
        image_ras: intensities (HU for CT).
        modality: ``"CT"`` or ``"MRI"`` (chooses the scaling).
        label_ras: integer labels.
        slice_index: int, ``"middle"`` or ``"auto"`` (the slice with most of ``key_labels``).
        palette: stable id -> colour table.
        name_of: label id -> name for the legend.
        colour_mode: ``"stable"`` or ``"reference"`` (see :func:`assign_colours`).
    """
    if image_ras.shape != label_ras.shape:
        raise VilaM3Error(f"Image {image_ras.shape} and segmentation {label_ras.shape} differ in size.")
    depth = image_ras.shape[2]
    index = resolve_slice_index(slice_index, depth, label_ras, key_labels)
    plane = axial_slice(scale_for_display(image_ras, modality), index)
    label_plane = axial_slice(label_ras, index)
    in_slice = present_labels(label_plane)
    colours = assign_colours(in_slice, palette, colour_mode)
    return SliceView(
        image=overlay_picture(plane, label_plane, colours),
        slice_index=index,
        depth=depth,
        labels_in_slice=in_slice,
        legend=build_legend(in_slice, colours, name_of),
    )


def render_image_slice(
    image: LoadedImage, slice_index: int | str = "middle", channel: int = 0, modality: str | None = None
) -> tuple[Image.Image, int]:
    """What the VLM sees of an input: a 2D picture as is (RGB), or one axial slice of a 3D volume.

    Args:
        image: the loaded image.
        slice_index: for volumes: an int, ``"middle"`` or ``"auto"`` (no segmentation yet, so the middle).
        channel: which channel of a multi-channel volume (MRI: 0 t1ce, 1 t1, 2 t2, 3 flair).
        modality: overrides ``image.modality`` for the intensity scaling.

    Returns:
        ``(picture, slice_index)``; ``slice_index`` is -1 for 2D pictures.
    """
    if not image.is_3d:
        plane = np.asarray(image.data.detach().cpu().numpy())
        if image.file_type == "dicom":
            plane = np.transpose(plane, (0, 2, 1))
        plane = plane[:3] if plane.shape[0] >= 3 else np.repeat(plane[:1], 3, axis=0)
        # LoadImage returns float32; 8-bit pictures keep their values, wider ones are min-max scaled
        in_8_bit = float(plane.min()) >= 0.0 and float(plane.max()) <= 255.0
        plane = plane.astype(np.uint8) if in_8_bit else scale_min_max(plane)
        return Image.fromarray(np.ascontiguousarray(np.moveaxis(plane, 0, -1)), mode="RGB"), -1
    if not 0 <= channel < image.data.shape[0]:
        raise VilaM3Error(f"Channel {channel} does not exist; the image has {image.data.shape[0]} channel(s).")
    volume = to_ras(image.data[channel : channel + 1])[0]
    index = resolve_slice_index(slice_index, volume.shape[2])
    plane = axial_slice(scale_for_display(volume, modality or image.modality), index)
    return grey_picture(plane), index


def save_picture(picture: Image.Image, path: Any) -> str:
    """Save a PIL picture (JPEG by the suffix, as the reference) and return the path as a string."""
    picture.save(str(path))
    return str(path)
