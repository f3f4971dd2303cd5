"""Image input for the vision tower: any image-like -> (3, H, W) float tensor, as VILA1.5's ``resize`` mode did.

Reference pipeline: convert to RGB, stretch (aspect ratio not kept) to the tower's size with PIL's bicubic filter,
scale by 1/255, normalise with mean = std = 0.5 -> values in [-1, 1]. Sizes and statistics come from the
checkpoint's ``vision_tower/preprocessor_config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vila_m3_core.errors import VilaM3Error

ImageLike = Image.Image | str | Path | np.ndarray


def load_image(image: Any) -> Image.Image:
    """Return ``image`` as an RGB PIL image.

    Args:
        image: a PIL image, a path to an image file, or a numpy array (H, W) grey, (H, W, 3|4) colour; float
            arrays are taken as 0..1 when their maximum is <= 1, else as 0..255.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, str | Path):
        path = Path(image)
        if not path.is_file():
            raise VilaM3Error(f"Image file not found: {path}")
        try:
            with Image.open(path) as opened:
                return opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise VilaM3Error(
                f"Cannot read {path} as an image ({err}). The VLM takes 2D images (PNG, JPEG, ...); "
                "render 3D volumes to slices with `vila-m3 chat`."
            ) from None
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # channel-first -> channel-last
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise VilaM3Error(f"Cannot use an array of shape {image.shape} as an image; expected (H, W) or (H, W, 3).")
        if array.dtype != np.uint8:
            array = array.astype(np.float64)
            if array.max(initial=0.0) <= 1.0:
                array = array * 255.0
            array = np.clip(array, 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    raise VilaM3Error(f"Unsupported image type {type(image).__name__}; pass a PIL image, a file path or an array.")


@dataclass(frozen=True)
class ImageProcessor:
    """SigLIP preprocessing with PIL resizing (byte-exact to the reference; the torchvision resize is not).

    Attributes:
        height, width: output size in pixels (384 x 384 for the released checkpoints).
        mean, std: per-channel normalisation after rescaling.
        rescale_factor: 1/255.
        resample: PIL filter id (3 = bicubic).
    """

    height: int = 384
    width: int = 384
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    resample: int = 3

    @classmethod
    def from_pretrained(cls, vision_tower_dir: str | Path) -> ImageProcessor:
        """Read ``preprocessor_config.json`` of a vision tower folder."""
        path = Path(vision_tower_dir) / "preprocessor_config.json"
        if not path.is_file():
            raise VilaM3Error(f"Missing {path}: the vision tower folder of the checkpoint is incomplete.")
        config = json.loads(path.read_text())
        size = config.get("size", {})
        if isinstance(size, int):
            size = {"height": size, "width": size}
        height = size.get("height", size.get("shortest_edge", 384))
        return cls(
            height=int(height),
            width=int(size.get("width", height)),
            mean=tuple(config.get("image_mean", cls.mean)),
            std=tuple(config.get("image_std", cls.std)),
            rescale_factor=float(config.get("rescale_factor", cls.rescale_factor)),
            resample=int(config.get("resample", cls.resample)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` content for this processor (SigLIP schema)."""
        return {
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": list(self.mean),
            "image_processor_type": "SiglipImageProcessor",
            "image_std": list(self.std),
            "processor_class": "SiglipProcessor",
            "resample": self.resample,
            "rescale_factor": self.rescale_factor,
            "size": {"height": self.height, "width": self.width},
        }

    def __call__(self, images: list[Any]) -> torch.Tensor:
        """Preprocess image-likes into a (N, 3, height, width) float32 tensor with values in [-1, 1]."""
        if not images:
            return torch.empty(0, 3, self.height, self.width)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        tensors = []
        for image in images:
            resized = load_image(image).resize((self.width, self.height), resample=self.resample)
            pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32)).permute(2, 0, 1)
            tensors.append((pixels * self.rescale_factor - mean) / std)
        return torch.stack(tensors)
