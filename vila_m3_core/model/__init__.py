"""The VILA-M3 vision-language model on stock transformers."""

from vila_m3_core.model.generation import GenerationOutput, GenerationRequest, GenerationSettings, generate_text_batch
from vila_m3_core.model.image_processing import ImageProcessor, load_image
from vila_m3_core.model.tiny import build_tiny_checkpoint
from vila_m3_core.model.vila import VilaM3, resolve_device, resolve_dtype

__all__ = [
    "GenerationOutput",
    "GenerationRequest",
    "GenerationSettings",
    "ImageProcessor",
    "VilaM3",
    "build_tiny_checkpoint",
    "generate_text_batch",
    "load_image",
    "resolve_device",
    "resolve_dtype",
]
