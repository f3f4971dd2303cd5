"""TotalSegmentator-style label maps (one binary mask per structure in ``<case>/segmentations/*.nii.gz``) merged into
one label volume in VISTA3D ids, so the VISTA3D slice extraction can use them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from data_prepare.records import Tally
from data_prepare.volumes import VolumeError, load_ras, nifti_stem
from vila_m3_core.experts.labels import vista3d_label_names

#: TotalSegmentator names whose words differ from the VISTA3D label name
ALIASES = {"urinary bladder": "bladder"}


@cache
def _ids_by_name() -> dict[str, int]:
    return {name.lower(): label_id for label_id, name in vista3d_label_names().items() if label_id != 0}


def vista3d_id_for_mask(mask_name: str) -> int | None:
    """The VISTA3D id of a TotalSegmentator mask name, or ``None``.

    ``kidney_left`` -> "left kidney" (14), ``lung_upper_lobe_right`` -> "right lung upper lobe" (30),
    ``vertebrae_L5`` -> "vertebrae L5" (33): the side word moves to the front, underscores become spaces.
    """
    words = mask_name.lower().split("_")
    sides = [w for w in words if w in ("left", "right")]
    name = " ".join(sides + [w for w in words if w not in ("left", "right")])
    return _ids_by_name().get(ALIASES.get(name, name))


def merge_masks(folder: Path, reference_shape: tuple[int, ...], tally: Tally, case: str) -> np.ndarray:
    """One RAS label volume ``(X, Y, Z)`` in VISTA3D ids from the binary masks in ``folder`` (file-name order; a
    later mask wins where masks overlap). Masks without a VISTA3D id or of another size are counted in ``tally``.

    Raises:
        VolumeError: no usable mask.
    """
    merged = np.zeros(reference_shape, dtype=np.int32)
    used = 0
    for path in sorted(folder.glob("*.nii*")):
        label_id = vista3d_id_for_mask(nifti_stem(path))
        if label_id is None:
            tally.drop("TotalSegmentator mask without a VISTA3D id (mask)", f"{case}/{path.name}")
            continue
        mask = load_ras(path)
        if mask.shape != reference_shape:
            tally.drop("TotalSegmentator mask of another size (mask)", f"{case}/{path.name}")
            continue
        merged[mask > 0.5] = label_id
        used += 1
    if not used:
        raise VolumeError("no usable TotalSegmentator mask")
    return merged
