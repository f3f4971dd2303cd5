"""Validation of bundle inputs, called from the bundle configs so that bad input fails with one clear message.

Each function raises :class:`~vila_m3_core.errors.VilaM3Error` naming the problem and the fix; MONAI wraps it in
``RuntimeError: Failed to evaluate ...`` when it comes from a config expression, and ``vila-m3 bundle run`` prints
only the message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

#: order of the four BraTS MRI sequences expected by the SegResNet weights (channel 0..3)
BRATS_SEQUENCES = ("t1ce", "t1", "t2", "flair")


def require_weights(path: str | Path, bundle_root: str | Path) -> str:
    """Return ``path`` if the weights file exists, else raise with the download command for the bundle.

    Args:
        path: the checkpoint the config loads (e.g. ``<bundle>/models/model.pt``).
        bundle_root: the bundle folder, used in the suggested ``download_large_files`` command.
    """
    from vila_m3_core.experts.runtime import bundle_weights_path

    return str(bundle_weights_path(bundle_root, path, Path(bundle_root).resolve().name))


def require_readable_file(path: str | Path, what: str = "input image") -> str:
    """Return ``str(path)`` if it is an existing, non-empty, readable file or folder (DICOM series), else raise."""
    if path is None or str(path).strip() == "":
        raise VilaM3Error(f"No {what} given: pass it on the command line, e.g. --image /path/to/file.")
    path = Path(str(path)).expanduser()
    if not path.exists():
        raise VilaM3Error(f"The {what} {path} does not exist.")
    if path.is_dir():
        if not any(path.iterdir()):
            raise VilaM3Error(f"The {what} folder {path} is empty (expected a DICOM series).")
        return str(path)
    if path.stat().st_size == 0:
        raise VilaM3Error(f"The {what} {path} is empty (0 bytes).")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as err:
        raise VilaM3Error(f"The {what} {path} cannot be read: {err}.") from err
    return str(path)


def load_header_shape(path: str | Path) -> tuple[int, ...]:
    """Spatial shape of an image file or DICOM folder, read through MONAI ``LoadImage``; unreadable -> error.

    Returns the array shape without a channel axis for volumes (H, W, D) and (H, W) or (H, W, C) for 2D images.
    """
    from monai.transforms import LoadImage

    try:
        image = LoadImage(image_only=True)(str(path))
    except Exception as err:  # MONAI raises several types; the user only needs to know the file is unreadable
        raise VilaM3Error(
            f"Cannot read {path} as an image ({type(err).__name__}: {err}). Supported: NIfTI (.nii/.nii.gz), NRRD, "
            "DICOM (file or series folder), PNG/JPEG."
        ) from err
    return tuple(int(s) for s in image.shape)


def require_volume(path: str | Path, what: str = "CT volume") -> str:
    """Check that ``path`` is a readable 3D volume (not a 2D image); return it as a string."""
    path = require_readable_file(path, what)
    shape = load_header_shape(path)
    spatial = [s for s in shape if s > 1]
    if len(shape) < 3 or len(spatial) < 3:
        raise VilaM3Error(
            f"{path} is a 2D image (shape {shape}) but this expert needs a 3D {what} (NIfTI, NRRD or a DICOM "
            "series folder). For chest X-rays use the expert_cxr bundle."
        )
    return path


def brats_datalist(image: Sequence[str] | str) -> list[dict[str, list[str]]]:
    """The one-item datalist of the BraTS bundle: ``[{"image": [t1ce, t1, t2, flair]}]``, validated.

    Args:
        image: four MRI files in the order t1ce, t1, t2, flair (a list, or a comma-separated string).
    """
    if isinstance(image, str):
        image = [part.strip() for part in image.split(",") if part.strip()]
    image = list(image or [])
    if len(image) != len(BRATS_SEQUENCES):
        raise VilaM3Error(
            f"The BraTS expert needs exactly 4 MRI sequences in the order {', '.join(BRATS_SEQUENCES)}; got "
            f"{len(image)}: {image}. Pass --image \"['t1ce.nii.gz','t1.nii.gz','t2.nii.gz','flair.nii.gz']\"."
        )
    shapes = []
    for name, path in zip(BRATS_SEQUENCES, image):
        require_volume(path, f"{name} MRI sequence")
        shapes.append(load_header_shape(path))
    if len(set(shapes)) != 1:
        raise VilaM3Error(
            f"The 4 MRI sequences must be co-registered with equal shapes; got {dict(zip(BRATS_SEQUENCES, shapes))}."
        )
    return [{"image": [str(p) for p in image]}]


def labels_from_metadata(metadata_file: str | Path) -> dict[str, str]:
    """The ``channel_def`` of the ``pred`` output in a bundle's metadata.json (index string -> label name)."""
    meta = json.loads(Path(metadata_file).read_text())
    return dict(meta["network_data_format"]["outputs"]["pred"]["channel_def"])


def parse_label_prompt(
    label_prompt: Any, labels_dict: dict[str, str], everything_values: Sequence[str] = ("everything", "all")
) -> list[int] | None:
    """Turn a user label prompt into VISTA3D class indices; ``None`` means "segment everything".

    Args:
        label_prompt: an int, a name (``"liver"``), a comma-separated string, a list of ints/names, or
            ``"everything"`` / ``None`` / ``""``.
        labels_dict: index string -> name, as in the bundle's ``channel_def``.

    Raises:
        VilaM3Error: a name or index that is not a supported class (with the closest names).
    """
    if label_prompt is None or (
        isinstance(label_prompt, str) and label_prompt.strip().lower() in ("", *everything_values)
    ):
        return None
    items = label_prompt
    if isinstance(items, (int, str)):
        items = [part.strip() for part in str(items).split(",")] if isinstance(items, str) else [items]
    name_to_index = {name.lower(): int(index) for index, name in labels_dict.items()}
    max_index = max(int(i) for i in labels_dict)
    indices: list[int] = []
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, int):
            if not 1 <= item <= max_index:
                raise VilaM3Error(f"Label prompt {item} is out of range: VISTA3D classes are 1..{max_index}.")
            indices.append(item)
            continue
        key = str(item).strip().lower()
        if key not in name_to_index or name_to_index[key] == 0:
            import difflib

            close = difflib.get_close_matches(key, [n for n in name_to_index if n != "background"], n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise VilaM3Error(
                f"Unknown label prompt {item!r}: it is not one of the {max_index} VISTA3D classes "
                f"(see configs/metadata.json channel_def).{hint} Use 'everything' to segment all classes."
            )
        indices.append(name_to_index[key])
    return indices


def vista3d_datalist(
    image: str,
    label_prompt: Any,
    labels_dict: dict[str, str],
    points: Sequence[Sequence[float]] | None = None,
    point_labels: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The one-item datalist of the VISTA3D bundle: ``[{"image": path, "label_prompt": [..]}]`` (no key = all).

    Args:
        image: CT volume (NIfTI/NRRD file or DICOM series folder).
        label_prompt: class names/indices or ``"everything"`` (see :func:`parse_label_prompt`).
        labels_dict: index string -> class name (the bundle's ``channel_def``).
        points: optional clicks ``[[x, y, z], ...]`` in voxel coordinates of the original image (one object).
        point_labels: one label per point: 1 foreground, 0 background (2/3 for the special classes).
    """
    item: dict[str, Any] = {"image": require_volume(image)}
    indices = parse_label_prompt(label_prompt, labels_dict)
    if points:
        if not point_labels or len(point_labels) != len(points):
            raise VilaM3Error(f"Give one point label per point: {len(points)} points, labels {point_labels}.")
        if any(len(p) != 3 for p in points):
            raise VilaM3Error(f"Points must be [[x, y, z], ...] voxel coordinates; got {points}.")
        if indices is not None and len(indices) != 1:
            raise VilaM3Error("With point prompts give at most one label prompt (the points describe one object).")
        item["points"] = [list(map(float, p)) for p in points]
        item["point_labels"] = [int(v) for v in point_labels]
    if indices is not None:
        item["label_prompt"] = indices
    return [item]


def image_datalist(image: str, what: str = "chest X-ray image") -> list[dict[str, str]]:
    """The one-item datalist of a 2D bundle: ``[{"image": path}]`` after checking the file is readable and 2D."""
    path = require_readable_file(image, what)
    shape = load_header_shape(path)
    spatial = [s for s in shape if s > 4]
    if len(spatial) > 2:
        raise VilaM3Error(f"{path} is a 3D volume (shape {shape}) but this expert needs a 2D {what}.")
    return [{"image": path}]
