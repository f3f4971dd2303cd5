"""Read a medical image once (2D JPEG/PNG, NIfTI, NRRD, DICOM file or series folder) through MONAI ``LoadImage``.

The result, :class:`LoadedImage`, carries the voxels, the affine and header metadata and the detected modality,
so the agent, the renderer and the experts share one read of the file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

#: Modality names used in the conversation ("This is a CT image.").
CT, MRI, CXR = "CT", "MRI", "CXR"
#: The channel order the BraTS bundle was trained with.
MRI_SEQUENCE_ORDER: tuple[str, ...] = ("t1ce", "t1", "t2", "flair")

_SUFFIXES_2D = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SUFFIXES_NIFTI = (".nii", ".nii.gz")
_SUFFIXES_NRRD = (".nrrd", ".nhdr")
_DICOM_MODALITIES = {"CT": CT, "MR": MRI, "CR": CXR, "DX": CXR, "DR": CXR}
_MRI_NAME_HINT = re.compile(r"(^|[^a-z])(mri|mr|t1|t1ce|t1c|t2|flair|brats)([^a-z]|$)")
_CT_NAME_HINT = re.compile(r"(^|[^a-z])ct([^a-z]|$)")


@dataclass
class LoadedImage:
    """An image read once, passed to the renderer and the experts.

    Attributes:
        data: a MONAI ``MetaTensor``, channel first. 2D images: ``(C, rows, cols)`` in numpy order. 3D volumes:
            ``(C, X, Y, Z)`` in the file's voxel order (MONAI convention), with ``data.affine`` mapping voxels to
            RAS world millimetres. Four MRI sequences are stacked as channels ``t1ce, t1, t2, flair``.
        source: the path (or list of four paths) it came from.
        file_type: ``"2d"``, ``"nifti"``, ``"nrrd"`` or ``"dicom"``.
        modality: ``"CT"``, ``"MRI"``, ``"CXR"`` or ``None`` when nothing tells.
        channel_names: names of the channels when they have a meaning (MRI sequences).
        header: a few header fields useful for the trace (DICOM Modality, BodyPartExamined, ...).
    """

    data: Any
    source: str | list[str]
    file_type: str
    modality: str | None = None
    channel_names: tuple[str, ...] = ()
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def is_3d(self) -> bool:
        """True for volumes (3 spatial axes)."""
        return self.data.ndim == 4

    @property
    def array(self) -> np.ndarray:
        """The voxels as a float32 numpy array, same layout as :attr:`data`."""
        return np.asarray(self.data.detach().cpu().numpy(), dtype=np.float32)

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world (RAS, mm) matrix (identity-like for 2D pictures)."""
        return np.asarray(self.data.affine.detach().cpu().numpy(), dtype=np.float64)

    @property
    def meta(self) -> dict[str, Any]:
        """MONAI metadata of the read."""
        return dict(self.data.meta)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis (from the affine)."""
        n = self.data.ndim - 1
        return tuple(float(v) for v in np.linalg.norm(self.affine[:n, :n], axis=0))

    def grey_2d(self) -> np.ndarray:
        """The first channel of a 2D image as ``(rows, cols)``, original intensities (what the CXR expert reads)."""
        if self.is_3d:
            raise VilaM3Error(f"{self.source} is a 3D volume, not a 2D image.")
        plane = np.asarray(self.data[0].detach().cpu().numpy())
        # MONAI's DICOM reader swaps rows/cols to its x/y convention; undo it so the picture is upright
        return plane.T if self.file_type == "dicom" else plane


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_dicom_file(path: Path) -> bool:
    from pydicom.misc import is_dicom

    try:
        return path.is_file() and is_dicom(str(path))
    except OSError:
        return False


def _dicom_header(path: Path) -> dict[str, Any]:
    import pydicom

    first = path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_dicom_file(p))
        if not files:
            raise VilaM3Error(f"The folder {path} holds no DICOM files.")
        first = files[0]
    ds = pydicom.dcmread(str(first), stop_before_pixels=True)
    return {k: str(getattr(ds, k)) for k in ("Modality", "BodyPartExamined", "SeriesDescription") if k in ds}


def _reader_for(path: Path) -> tuple[str, Any]:
    from monai.data import NibabelReader, NrrdReader, PILReader, PydicomReader

    suffix = _suffix(path)
    if (
        path.is_dir()
        or suffix == ".dcm"
        or (suffix not in _SUFFIXES_2D + _SUFFIXES_NIFTI + _SUFFIXES_NRRD and _is_dicom_file(path))
    ):
        return "dicom", PydicomReader()
    if suffix in _SUFFIXES_NIFTI:
        return "nifti", NibabelReader()
    if suffix in _SUFFIXES_NRRD:
        return "nrrd", NrrdReader()
    if suffix in _SUFFIXES_2D:
        # numpy (rows, cols) order: a chest X-ray must stay upright for the classifiers
        return "2d", PILReader(reverse_indexing=False)
    raise VilaM3Error(
        f"Unsupported image file {path}: use PNG/JPEG, NIfTI (.nii, .nii.gz), NRRD (.nrrd) or DICOM (file or folder)."
    )


def detect_modality(image: LoadedImage) -> str | None:
    """Modality from the DICOM Modality tag, else file-name hints, else CT-like intensities (HU below -500).

    2D pictures without DICOM headers return ``None``: only the prompt can tell (the agent decides).
    """
    tag = image.header.get("Modality")
    if tag in _DICOM_MODALITIES:
        return _DICOM_MODALITIES[tag]
    if image.channel_names == MRI_SEQUENCE_ORDER:
        return MRI
    if not image.is_3d:
        return None
    names = image.source if isinstance(image.source, list) else [image.source]
    stem = " ".join(Path(str(n)).name.lower() for n in names)
    if _MRI_NAME_HINT.search(stem):
        return MRI
    if _CT_NAME_HINT.search(stem):
        return CT
    if float(image.data.min()) < -500.0:
        return CT
    return None


def load_medical_image(source: str | Path, modality: str | None = None) -> LoadedImage:
    """Read one image file or DICOM series folder.

    Args:
        source: PNG/JPEG/BMP/TIFF picture, NIfTI, NRRD, DICOM file, or a folder holding one DICOM series.
        modality: force ``"CT"``, ``"MRI"`` or ``"CXR"``; ``None`` detects it (:func:`detect_modality`).

    Returns:
        the :class:`LoadedImage`. A single CT/MR DICOM slice becomes a volume of depth 1 so 3D experts accept it.

    Raises:
        VilaM3Error: missing, unsupported or unreadable file.
    """
    from monai.transforms import LoadImage

    path = Path(source).expanduser()
    if not path.exists():
        raise VilaM3Error(f"Image not found: {path}")
    file_type, reader = _reader_for(path)
    header = _dicom_header(path) if file_type == "dicom" else {}
    try:
        data = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(str(path))
    except Exception as err:  # noqa: BLE001 - readers raise many types; the user only needs to know which file
        raise VilaM3Error(f"Cannot read the image {path} as {file_type}: {err}") from err
    if file_type == "dicom" and data.ndim == 3 and _DICOM_MODALITIES.get(header.get("Modality")) in (CT, MRI):
        data = data.unsqueeze(-1)  # one slice of a volume modality: keep it 3D (depth 1)
    image = LoadedImage(data=data, source=str(path), file_type=file_type, header=header)
    image.modality = modality or detect_modality(image)
    logger.debug("loaded %s: %s %s, modality %s", path, file_type, tuple(data.shape), image.modality)
    return image


def load_mri_sequences(paths: Sequence[str | Path]) -> LoadedImage:
    """Read the four co-registered MRI sequences of one study, in the order t1ce, t1, t2, flair.

    Returns:
        a :class:`LoadedImage` with ``data`` of shape ``(4, X, Y, Z)`` and the affine of the t1ce file.

    Raises:
        VilaM3Error: not exactly four files, a 2D file, or sequences of different shapes.
    """
    import torch
    from monai.data import MetaTensor

    if isinstance(paths, (str, Path)) or len(paths) != len(MRI_SEQUENCE_ORDER):
        count = 1 if isinstance(paths, (str, Path)) else len(paths)
        raise VilaM3Error(
            f"BraTS needs {len(MRI_SEQUENCE_ORDER)} MRI sequences in the order "
            f"{', '.join(MRI_SEQUENCE_ORDER)}; got {count} file(s)."
        )
    volumes = [load_medical_image(p, modality=MRI) for p in paths]
    for name, volume in zip(MRI_SEQUENCE_ORDER, volumes):
        if not volume.is_3d or volume.data.shape[0] != 1:
            raise VilaM3Error(f"The {name} sequence {volume.source} is not a single-channel 3D volume.")
    shapes = {tuple(v.data.shape[1:]) for v in volumes}
    if len(shapes) != 1:
        raise VilaM3Error(f"The four MRI sequences must have the same size; got {sorted(shapes)}.")
    first = volumes[0].data
    meta = {k: v for k, v in first.meta.items() if k != "affine"}  # the affine is passed on its own
    stacked = MetaTensor(torch.cat([v.data.as_tensor() for v in volumes], dim=0), affine=first.affine, meta=meta)
    return LoadedImage(
        data=stacked,
        source=[str(v.source) for v in volumes],
        file_type=volumes[0].file_type,
        modality=MRI,
        channel_names=MRI_SEQUENCE_ORDER,
    )


def load_any(image: str | Path | Sequence[str | Path] | LoadedImage, modality: str | None = None) -> LoadedImage:
    """Load what an :class:`~vila_m3_core.experts.base.ExpertRequest` may carry: a path, four MRI paths, or an
    already loaded image (returned as is)."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, Path)):
        return load_medical_image(image, modality)
    paths = list(image)
    if len(paths) == 1:
        return load_medical_image(paths[0], modality)
    return load_mri_sequences(paths)
