"""Loading medical images (2D pictures, NIfTI, NRRD, DICOM) and detecting their modality."""

from vila_m3_core.imaging.loading import (
    CT,
    CXR,
    MRI,
    MRI_SEQUENCE_ORDER,
    LoadedImage,
    detect_modality,
    load_any,
    load_medical_image,
    load_mri_sequences,
)

__all__ = [
    "CT",
    "CXR",
    "MRI",
    "MRI_SEQUENCE_ORDER",
    "LoadedImage",
    "detect_modality",
    "load_any",
    "load_medical_image",
    "load_mri_sequences",
]
