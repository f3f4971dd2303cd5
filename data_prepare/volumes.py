"""Reading NIfTI volumes for slice extraction, in the orientation the experts render (RAS, axial = axis 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vila_m3_core.experts.rendering import to_ras


class VolumeError(ValueError):
    """A volume could not be read; the message is the drop reason."""


def load_ras(path: str | Path) -> np.ndarray:
    """A 3D NIfTI volume as a RAS numpy array ``(X, Y, Z)`` (float32 intensities or labels).

    Raises:
        VolumeError: missing or unreadable file, or not a single-channel 3D volume.
    """
    from monai.transforms import LoadImage

    path = Path(path)
    if not path.is_file():
        raise VolumeError("volume file missing")
    try:
        volume = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    except Exception as err:  # MONAI wraps reader errors in several types
        raise VolumeError(f"unreadable volume ({type(err).__name__})") from err
    if volume.ndim != 4 or volume.shape[0] != 1:
        raise VolumeError(f"not a single-channel 3D volume (shape {tuple(volume.shape)})")
    return to_ras(volume)[0].astype(np.float32)


def nifti_stem(path: str | Path) -> str:
    """``liver_0`` for ``.../liver_0.nii.gz``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
