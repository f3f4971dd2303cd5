"""VILA-M3: SigLIP vision tower -> ``mlp_downsample`` projector -> Llama-family LLM, on stock ``transformers``.

The whole VLM idea on one screen: images are encoded to (N, 196, D) embeddings; the prompt is tokenized chunk-wise
around ``<image>`` with the sentinel -200 in between; each sentinel is replaced by its image's 196 rows (labels
-100 there); the LLM runs on the spliced embeddings. Loading reads the released three-folder layout unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vila_m3_core.conversation import Turn, default_conv_mode, get_template
from vila_m3_core.devices import resolve_device, resolve_dtype
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model.checkpoint import (
    VilaM3Config,
    load_projector_state,
    read_checkpoint_config,
    save_projector,
    save_vision_tower,
)
from vila_m3_core.model.hub import CheckpointLocation, resolve_checkpoint
from vila_m3_core.model.image_processing import ImageProcessor
from vila_m3_core.model.projector import MultimodalProjector
from vila_m3_core.model.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX, load_tokenizer

log = logging.getLogger(__name__)


class VilaM3(nn.Module):
    """The VILA-M3 vision-language model with its tokenizer, image processor and conversation template.

    Attributes:
        llm: the causal LM (``LlamaForCausalLM`` for all released sizes).
        vision_tower: ``SiglipVisionModel``; features are taken from ``hidden_states[select_layer]`` without the
            post-layernorm.
        mm_projector: :class:`MultimodalProjector` (``mlp_downsample`` for all released sizes).
        tokenizer, image_processor: from ``llm/`` and ``vision_tower/preprocessor_config.json``.
        conv_mode: the default template for prompts (3B/13B ``vicuna_v1``, 8B ``llama_3``).
    """

    def __init__(
        self,
        llm: nn.Module,
        vision_tower: nn.Module,
        mm_projector: MultimodalProjector,
        tokenizer: Any,
        image_processor: ImageProcessor,
        config: VilaM3Config,
        conv_mode: str = "vicuna_v1",
        location: CheckpointLocation | None = None,
    ) -> None:
        super().__init__()
        self.llm = llm
        self.vision_tower = vision_tower
        self.mm_projector = mm_projector
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.conv_mode = get_template(conv_mode).name
        self.location = location

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        revision: str | None = None,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device = "auto",
        conv_mode: str | None = None,
        cache_dir: str | Path | None = None,
        attn_implementation: str = "sdpa",
    ) -> VilaM3:
        """Load a checkpoint in the released layout from a folder or a Hub repo id (cached, ``revision`` honoured).

        Each part is loaded by ``from_pretrained`` straight into ``dtype`` on ``device`` (safetensors are memory
        mapped), so the weights are never held twice.
        """
        from transformers import AutoModel, AutoModelForCausalLM

        location = resolve_checkpoint(path_or_repo_id, revision=revision, cache_dir=cache_dir)
        root = location.path
        config = read_checkpoint_config(root)
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        common = {"dtype": torch_dtype, "attn_implementation": attn_implementation, "device_map": str(device)}
        try:
            llm = AutoModelForCausalLM.from_pretrained(str(root / "llm"), **common)
            vision_tower = AutoModel.from_pretrained(str(root / "vision_tower"), **common)
        except (OSError, ValueError, KeyError) as err:
            raise VilaM3Error(f"Cannot load the LLM or vision tower of {root}: {err}") from None
        tokenizer = load_tokenizer(root / "llm")
        projector_cfg = json.loads((root / "mm_projector" / "config.json").read_text())
        projector_type = projector_cfg.get("mm_projector_type", config.projector_type)
        mm_hidden = config.mm_hidden_size or vision_tower.config.hidden_size
        with torch.device("meta"):
            projector = MultimodalProjector(projector_type, mm_hidden, llm.config.hidden_size)
        try:
            projector.load_state_dict(load_projector_state(root / "mm_projector"), strict=True, assign=True)
        except RuntimeError as err:
            raise VilaM3Error(
                f"mm_projector weights of {root} do not fit a {projector_type} projector: {err}"
            ) from None
        projector.to(device=device, dtype=torch_dtype)
        model = cls(
            llm=llm,
            vision_tower=vision_tower,
            mm_projector=projector,
            tokenizer=tokenizer,
            image_processor=ImageProcessor.from_pretrained(root / "vision_tower"),
            config=config,
            conv_mode=conv_mode or default_conv_mode(location.repo_id or root.name, tokenizer.get_vocab()),
            location=location,
        )
        return model.eval()

    def save_pretrained(self, output_dir: str | Path) -> Path:
        """Write the released layout (config.json, llm/, vision_tower/, mm_projector/) so that
        :meth:`from_pretrained` gives back identical weights."""
        root = Path(output_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.llm.save_pretrained(str(root / "llm"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(root / "llm"))
        special_map = root / "llm" / "special_tokens_map.json"
        if not special_map.is_file():  # transformers 5 no longer writes it; the released folders have it
            tokens = {k: getattr(self.tokenizer, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
            special_map.write_text(json.dumps({k: v for k, v in tokens.items() if v}, indent=2) + "\n")
        save_vision_tower(self.vision_tower, root / "vision_tower", self.image_processor.to_dict())
        projector_cfg = dict(self.config.raw.get("mm_projector_cfg") or {})
        projector_cfg.setdefault("architectures", ["MultimodalProjector"])
        projector_cfg.setdefault("model_type", "v2l_projector")
        projector_cfg["mm_projector_type"] = self.mm_projector.projector_type
        save_projector(self.mm_projector, root / "mm_projector", projector_cfg)
        (root / "config.json").write_text(json.dumps(self.config.raw, indent=2) + "\n")
        return root

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.llm.parameters()).dtype

    @property
    def max_length(self) -> int:
        """Context length in tokens after image expansion (``tokenizer_model_max_length``, 4096 when released)."""
        cfg = self.llm.config
        for key in ("tokenizer_model_max_length", "model_max_length", "max_position_embeddings"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 4096

    @property
    def tokens_per_image(self) -> int:
        """LLM positions one image takes (196 for 384 px / patch 14 with ``mlp_downsample``)."""
        vcfg = self.vision_tower.config
        vision_tokens = (vcfg.image_size // vcfg.patch_size) ** 2
        if self.config.select_feature == "patch":
            vision_tokens -= 1
        return self.mm_projector.tokens_per_image(vision_tokens)

    # ------------------------------------------------------------------ images
    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, T, C): the hidden state after encoder layer ``select_layer`` (no post-layernorm).

        Layers above the selected one are not run (equal to ``hidden_states[select_layer]`` of a full pass).
        """
        tower = self.vision_tower
        layers = tower.encoder.layers
        select = self.config.select_layer
        n_layers = select if select >= 0 else len(layers) + 1 + select
        hidden = tower.embeddings(pixel_values.to(device=self.device, dtype=tower.dtype))
        for layer in layers[:n_layers]:
            hidden = layer(hidden, None)
        if self.config.select_feature == "patch":
            hidden = hidden[:, 1:]
        return hidden

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pixel values -> (N, tokens_per_image, D) LLM-width image embeddings."""
        features = self.vision_features(pixel_values)
        param = next(self.mm_projector.parameters(), None)
        return self.mm_projector(features if param is None else features.to(param.dtype))

    def preprocess_images(self, images: Sequence[Any]) -> torch.Tensor:
        """Image-likes -> (N, 3, H, W) pixel values on the model's device and dtype."""
        return self.image_processor(list(images)).to(device=self.device, dtype=self.vision_tower.dtype)

    # ------------------------------------------------------------------ splice
    def splice(
        self,
        token_ids: Sequence[Sequence[int]],
        image_embeds: torch.Tensor | None,
        labels: Sequence[Sequence[int]] | None = None,
        padding_side: str = "right",
        truncate: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Replace each image sentinel by its image's embedding rows and pad the batch.

        Args:
            token_ids: per sample, ids with :data:`IMAGE_TOKEN_INDEX` where an image goes (no padding).
            image_embeds: (N_img, P, D), the images of the whole batch in order of their sentinels.
            labels: per sample, targets aligned with ``token_ids`` (or ``None``); image rows get -100.
            padding_side: ``"left"`` for generation, ``"right"`` for training.
            truncate: cut sequences longer than :attr:`max_length` (training, as the reference did) instead of
                raising (inference).

        Returns:
            ``inputs_embeds`` (B, L, D), ``attention_mask`` (B, L) and, with ``labels``, ``labels`` (B, L).
        """
        embed = self.llm.get_input_embeddings()
        n_sentinels = sum(sum(1 for t in ids if t == IMAGE_TOKEN_INDEX) for ids in token_ids)
        n_images = 0 if image_embeds is None else image_embeds.shape[0]
        if n_sentinels != n_images:
            raise VilaM3Error(
                f"The prompt has {n_sentinels} <image> token(s) but {n_images} image(s) were given; "
                "give one image per <image>."
            )
        rows, row_labels, next_image = [], [], 0
        for sample, ids in enumerate(token_ids):
            ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)
            is_image = ids_t == IMAGE_TOKEN_INDEX
            text_embeds = embed(ids_t.masked_fill(is_image, 0))
            sample_labels = torch.tensor(labels[sample], device=self.device) if labels is not None else None
            pieces, label_pieces, start = [], [], 0
            for position in is_image.nonzero().flatten().tolist() + [len(ids)]:
                pieces.append(text_embeds[start:position])
                if sample_labels is not None:
                    label_pieces.append(sample_labels[start:position])
                if position < len(ids):
                    image = image_embeds[next_image].to(text_embeds.dtype)
                    next_image += 1
                    pieces.append(image)
                    if sample_labels is not None:
                        label_pieces.append(torch.full((image.shape[0],), IGNORE_INDEX, device=self.device))
                start = position + 1
            row = torch.cat(pieces)
            if row.shape[0] > self.max_length:
                if not truncate:
                    n_text = len(ids) - int(is_image.sum())
                    raise VilaM3Error(
                        f"The prompt is {row.shape[0]} tokens after image expansion ({n_text} text tokens + "
                        f"{int(is_image.sum())} image(s) x {self.tokens_per_image}), longer than the model's context "
                        f"of {self.max_length}; shorten the prompt or use fewer images."
                    )
                row = row[: self.max_length]
                label_pieces = [torch.cat(label_pieces)[: self.max_length]] if labels is not None else []
            rows.append(row)
            if labels is not None:
                row_labels.append(torch.cat(label_pieces))
        length = max(row.shape[0] for row in rows)
        batch, dim = len(rows), rows[0].shape[-1]
        inputs_embeds = rows[0].new_zeros(batch, length, dim)
        attention_mask = torch.zeros(batch, length, dtype=torch.long, device=self.device)
        padded_labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            span = slice(length - row.shape[0], length) if padding_side == "left" else slice(0, row.shape[0])
            inputs_embeds[i, span] = row
            attention_mask[i, span] = 1
            if labels is not None:
                padded_labels[i, span] = row_labels[i]
        out = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
        if labels is not None:
            out["labels"] = padded_labels
        return out

    # ------------------------------------------------------------------ training
    def forward(
        self,
        input_ids: torch.Tensor | Sequence[Sequence[int]],
        images: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | Sequence[Sequence[int]] | None = None,
    ) -> Any:
        """LM forward on a batch; with ``labels`` the output's ``loss`` is the mean token cross-entropy.

        Args:
            input_ids: (B, L) padded ids with image sentinels (padding marked by ``attention_mask``), or a list of
                unpadded id lists.
            images: (N_img, 3, H, W) pixel values of all images of the batch, in sentinel order.
            attention_mask: (B, L) 1 for real tokens; required with a padded tensor.
            labels: (B, L) targets aligned with ``input_ids`` (-100 = ignored), or lists.
        """
        if isinstance(input_ids, torch.Tensor):
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            keep = [row.bool() for row in mask]
            ids_list = [ids[k].tolist() for ids, k in zip(input_ids, keep, strict=True)]
            labels_list = [lab[k].tolist() for lab, k in zip(labels, keep, strict=True)] if labels is not None else None
        else:
            ids_list = [list(ids) for ids in input_ids]
            labels_list = [list(lab) for lab in labels] if labels is not None else None
        image_embeds = self.encode_images(images) if images is not None and len(images) else None
        batch = self.splice(ids_list, image_embeds, labels_list, padding_side="right", truncate=True)
        return self.llm(**batch)

    def set_trainable(self, vision_tower: bool = True, mm_projector: bool = True, llm: bool = True) -> None:
        """Freeze or unfreeze the three parts (M3 fine-tuning trains all three)."""
        for module, flag in ((self.vision_tower, vision_tower), (self.mm_projector, mm_projector), (self.llm, llm)):
            module.requires_grad_(flag)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Trade compute for memory in the LLM and the vision tower."""
        for module in (self.llm, self.vision_tower):
            if enabled:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            else:
                module.gradient_checkpointing_disable()

    # ------------------------------------------------------------------ generation (see generation.py)
    def generate(
        self,
        turns_or_prompt: Sequence[Turn] | str,
        images: Sequence[Any] | None = None,
        conv_mode: str | None = None,
        return_details: bool = False,
        **settings: Any,
    ) -> Any:
        """Answer one conversation; see :func:`vila_m3_core.model.generation.generate_batch` for ``settings``."""
        from vila_m3_core.model.generation import GenerationRequest, generate_batch

        request = GenerationRequest(turns_or_prompt, tuple(images or ()))
        output = generate_batch(self, [request], batch_size=1, conv_mode=conv_mode, **settings)[0]
        return output if return_details else output.text

    def generate_batch(
        self, requests: Sequence[Any], batch_size: int = 8, conv_mode: str | None = None, **settings: Any
    ) -> list[str]:
        """Answer many requests in padded batches; texts come back in input order."""
        from vila_m3_core.model.generation import generate_batch

        outputs = generate_batch(self, requests, batch_size=batch_size, conv_mode=conv_mode, **settings)
        return [output.text for output in outputs]
