"""Tiny random-weight VILA-M3 checkpoints in the exact released layout, for tests, demos and benchmarks.

Real architectures (LlamaForCausalLM, SiglipVisionModel at 384 px / patch 14, ``mlp_downsample``), tiny widths.
Tokenizers are real ones that ship in packages, never downloaded:

* ``vicuna`` (3B/13B style): the Llama-2 SentencePiece model ``mistral_common/data/tokenizer.model.v1``
  (32000 pieces, ``<unk>``/``<s>``/``</s>`` = 0/1/2), saved as the released ``tokenizer.model`` + config.
* ``llama3`` (8B style): a small byte-level BPE trained here with ``tokenizers`` on a fixed corpus, carrying the
  Llama-3 special tokens (``<|begin_of_text|>``, ``<|end_of_text|>``, ``<|start_header_id|>``,
  ``<|end_header_id|>``, ``<|eot_id|>``, ``[PAD]``) and a BOS-adding post-processor like Llama 3's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from vila_m3_core.conversation import LLAMA_3_SYSTEM, VICUNA_SYSTEM
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model.checkpoint import save_projector, save_vision_tower
from vila_m3_core.model.image_processing import ImageProcessor
from vila_m3_core.model.projector import MultimodalProjector

LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "[PAD]",
)
_CORPUS = [
    VICUNA_SYSTEM,
    LLAMA_3_SYSTEM,
    "What is shown in the image? Is there a tumor? Describe the image in detail.",
    "This looks like a CT image. Let me trigger VISTA3D(hepatic tumor). This is a chest x-ray.",
    "The results are shown. The colors in this image describe red: liver, blue: hepatic tumor.",
    "Use this result to respond to this prompt: yes no left right lung heart liver spleen kidney brain.",
    "The lungs are clear. No pleural effusion or pneumothorax. Heart size is normal. 0123456789",
]


def sentencepiece_model_path() -> Path:
    """The Llama-2-format SentencePiece file that ships in ``mistral_common``."""
    try:
        import mistral_common
    except ImportError:
        raise VilaM3Error("build_tiny_checkpoint(flavor='vicuna') needs the mistral-common package.") from None
    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise VilaM3Error(f"{path} is missing from the installed mistral-common.")
    return path


def _write_vicuna_tokenizer(llm_dir: Path, max_length: int) -> None:
    shutil.copyfile(sentencepiece_model_path(), llm_dir / "tokenizer.model")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "model_max_length": max_length,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "use_default_system_prompt": False,
        **special,
    }
    (llm_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (llm_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _write_llama3_tokenizer(llm_dir: Path, max_length: int, vocab_size: int = 600) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    tokenizer.add_special_tokens(list(LLAMA3_SPECIAL_TOKENS))
    bos_id = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="[PAD]",
        model_max_length=max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(str(llm_dir))


def build_tiny_checkpoint(
    out_dir: str | Path,
    flavor: str = "vicuna",
    seed: int = 0,
    hidden_size: int = 64,
    vision_hidden_size: int = 32,
    max_length: int = 4096,
    dtype: torch.dtype = torch.float32,
    init_std: float = 0.2,
    num_layers: int = 2,
) -> Path:
    """Write a random-weight VILA-M3 checkpoint in the released layout and return its folder.

    Args:
        out_dir: target folder (created).
        flavor: ``"vicuna"`` (3B/13B style, SentencePiece) or ``"llama3"`` (8B style, BPE, GQA).
        seed: torch seed for the weights (same seed -> same weights).
        hidden_size: LLM width D; ``vision_hidden_size``: SigLIP width C.
        max_length: context length recorded as ``tokenizer_model_max_length``.
        dtype: dtype of the saved weights.
        init_std: weight init std; larger than the usual 0.02 so that random logits have clear maxima.
        num_layers: LLM decoder layers (benchmarks build ~1B-parameter checkpoints with this and ``hidden_size``).
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

    if flavor not in ("vicuna", "llama3"):
        raise VilaM3Error(f"Unknown tiny checkpoint flavor {flavor!r}; use 'vicuna' or 'llama3'.")
    root = Path(out_dir)
    llm_dir = root / "llm"
    llm_dir.mkdir(parents=True, exist_ok=True)
    if flavor == "vicuna":
        _write_vicuna_tokenizer(llm_dir, max_length)
        vocab, bos, eos, pad, kv_heads, rope = 32000, 1, 2, 0, 4, 10000.0
    else:
        _write_llama3_tokenizer(llm_dir, max_length)
        added = json.loads((llm_dir / "tokenizer.json").read_text())["added_tokens"]
        ids = {token["content"]: token["id"] for token in added}
        vocab = max(ids.values()) + 1
        bos, eos, pad, kv_heads, rope = ids["<|begin_of_text|>"], ids["<|end_of_text|>"], ids["[PAD]"], 2, 500000.0

    torch.manual_seed(seed)
    llm_config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4 if hidden_size < 1024 else 16,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_length,
        rope_theta=rope,
        rms_norm_eps=1e-5,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
        initializer_range=init_std,
    )
    llm_config.architectures = ["LlamaForCausalLM"]
    for key, value in (("model_max_length", max_length), ("tokenizer_model_max_length", max_length),
                       ("tokenizer_padding_side", "right")):  # fmt: skip
        setattr(llm_config, key, value)
    llm = LlamaForCausalLM(llm_config).to(dtype)
    llm.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    llm.save_pretrained(str(llm_dir), safe_serialization=True)

    vision_config = SiglipVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_hidden_size * 2,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=384,
        patch_size=14,
        initializer_range=init_std,
    )
    vision_config.architectures = ["SiglipVisionModel"]
    vision_tower = SiglipVisionModel(vision_config).to(dtype)
    save_vision_tower(vision_tower, root / "vision_tower", ImageProcessor().to_dict())

    projector = MultimodalProjector("mlp_downsample", vision_hidden_size, hidden_size)
    with torch.no_grad():
        for module in projector.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, init_std)
    projector_cfg = {"architectures": ["MultimodalProjector"], "mm_projector_type": "mlp_downsample",
                     "model_type": "v2l_projector", "torch_dtype": str(dtype).removeprefix("torch.")}  # fmt: skip
    save_projector(projector.to(dtype), root / "mm_projector", projector_cfg)

    (root / "config.json").write_text(json.dumps(_top_level_config(llm_config, vision_config, projector_cfg, dtype),
                                                 indent=2) + "\n")  # fmt: skip
    return root


def _top_level_config(llm_config: Any, vision_config: Any, projector_cfg: dict, dtype: torch.dtype) -> dict:
    """The VILA1.5 top-level config.json with the three sub-configs embedded, as released."""
    return {
        "_name_or_path": "./vlm",
        "architectures": ["LlavaLlamaModel"],
        "drop_path_rate": 0.0,
        "hidden_size": llm_config.hidden_size,
        "image_aspect_ratio": "resize",
        "interpolate_mode": "linear",
        "llm_cfg": {**llm_config.to_dict(), "_name_or_path": "./llm"},
        "mm_hidden_size": vision_config.hidden_size,
        "mm_projector_cfg": {**projector_cfg, "_name_or_path": "./mm_projector"},
        "mm_projector_lr": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "cls_patch",
        "mm_vision_select_layer": -2,
        "model_dtype": str(dtype),
        "model_type": "llava_llama",
        "num_video_frames": 8,
        "resume_path": "./vlm",
        "s2": False,
        "s2_max_split_size": 336,
        "s2_scales": "336,672,1008",
        "transformers_version": "4.37.2",
        "tune_language_model": True,
        "tune_mm_projector": True,
        "tune_vision_tower": True,
        "vision_resolution": -1,
        "vision_tower_cfg": {**vision_config.to_dict(), "_name_or_path": "./vision_tower"},
    }


def random_image(seed: int = 0, size: tuple[int, int] = (96, 80)) -> Any:
    """A reproducible RGB noise image of ``size`` (width, height) pixels, for tests and demos."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
