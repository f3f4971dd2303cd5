"""The released VILA-M3 checkpoint layout: reading, validating and writing it.

```
<root>/config.json        model_type "llava_llama"; llm_cfg, vision_tower_cfg, mm_projector_cfg (full sub-configs),
                          mm_vision_select_layer, mm_vision_select_feature, image_aspect_ratio, hidden_size, ...
<root>/llm/               a standalone LlamaForCausalLM checkpoint + tokenizer
<root>/vision_tower/      a standalone SiglipVisionModel (keys ``vision_model.*``) + preprocessor_config.json
<root>/mm_projector/      config.json (mm_projector_type) + model.safetensors (keys ``layers.1/2/4.*``)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vila_m3_core.errors import VilaM3Error

SUPPORTED_MODEL_TYPES = ("llava_llama",)
SUBFOLDERS = ("llm", "vision_tower", "mm_projector")
VISION_KEY_PREFIX = "vision_model."


@dataclass
class VilaM3Config:
    """What the VLM needs from the top-level ``config.json``; ``raw`` keeps every field for a lossless save."""

    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def select_layer(self) -> int:
        return int(self.raw.get("mm_vision_select_layer", -2))

    @property
    def select_feature(self) -> str:
        return str(self.raw.get("mm_vision_select_feature", "cls_patch"))

    @property
    def image_aspect_ratio(self) -> str:
        return str(self.raw.get("image_aspect_ratio", "resize"))

    @property
    def mm_hidden_size(self) -> int | None:
        value = self.raw.get("mm_hidden_size")
        return int(value) if value is not None else None

    @property
    def projector_type(self) -> str:
        cfg = self.raw.get("mm_projector_cfg")
        if isinstance(cfg, dict) and cfg.get("mm_projector_type"):
            return str(cfg["mm_projector_type"])
        return str(self.raw.get("mm_projector_type", "mlp_downsample"))


def read_checkpoint_config(root: Path) -> VilaM3Config:
    """Validate the layout under ``root`` and read its top-level config.

    Raises:
        VilaM3Error: a missing file or folder (listing all that are missing), an unreadable config, or a
            ``model_type`` that is not a VILA model.
    """
    config_path = root / "config.json"
    missing = [] if config_path.is_file() else ["config.json"]
    for sub in SUBFOLDERS:
        if not (root / sub / "config.json").is_file():
            missing.append(f"{sub}/config.json")
        if not any((root / sub).glob("*.safetensors")) and not any((root / sub).glob("*.bin")):
            missing.append(f"{sub}/*.safetensors")
    if not (root / "vision_tower" / "preprocessor_config.json").is_file():
        missing.append("vision_tower/preprocessor_config.json")
    if missing:
        raise VilaM3Error(
            f"{root} is not a complete VILA-M3 checkpoint; missing: {', '.join(missing)}. A checkpoint folder holds "
            "config.json and the folders llm/, vision_tower/, mm_projector/ as released in MONAI/Llama3-VILA-M3-*; "
            "re-download it or pass a Hub repo id."
        )
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise VilaM3Error(f"{config_path} is not valid JSON: {err}") from None
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise VilaM3Error(
            f"{config_path} has model_type {model_type!r}; vila-m3 loads VILA1.5 / VILA-M3 checkpoints "
            f"(model_type {', '.join(SUPPORTED_MODEL_TYPES)})."
        )
    if raw.get("image_aspect_ratio", "resize") != "resize":
        raise VilaM3Error(f"image_aspect_ratio {raw['image_aspect_ratio']!r} is not supported (only 'resize').")
    return VilaM3Config(raw=raw)


def load_projector_state(folder: Path) -> dict[str, torch.Tensor]:
    """Read the projector weights (``layers.*``) from ``mm_projector/``."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if files:
        state: dict[str, torch.Tensor] = {}
        for path in files:
            state.update(load_file(str(path)))
        return state
    return torch.load(next(folder.glob("*.bin")), map_location="cpu", weights_only=True)


def save_vision_tower(vision_tower: torch.nn.Module, folder: Path, preprocessor: dict[str, Any]) -> None:
    """Save a SiglipVisionModel with the released ``vision_model.*`` key names (transformers 5 drops the prefix)."""
    from safetensors.torch import save_file

    vision_tower.save_pretrained(str(folder), safe_serialization=True)
    for path in folder.glob("model*.safetensors"):
        path.unlink()
    (folder / "model.safetensors.index.json").unlink(missing_ok=True)
    state = {
        (key if key.startswith(VISION_KEY_PREFIX) else VISION_KEY_PREFIX + key): tensor.contiguous()
        for key, tensor in vision_tower.state_dict().items()
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")


def save_projector(projector: torch.nn.Module, folder: Path, config: dict[str, Any]) -> None:
    """Save the projector as ``mm_projector/{config.json, model.safetensors}``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {key: tensor.contiguous() for key, tensor in projector.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
