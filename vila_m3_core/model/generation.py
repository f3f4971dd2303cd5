"""Text generation: single and batched, for the VLM and for plain causal LMs (e.g. the GREEN judge).

Batches are left-padded (embeddings for the VLM, ids for a plain LM), so a batched greedy answer equals the
one-by-one answer. Generation stops on every stop string of the template (vicuna ``</s>``; llama_3 ``<|eot_id|>`` and
``<|end_of_text|>``) plus the tokenizer's EOS, and uses the KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from vila_m3_core.conversation import IMAGE_TOKEN, Turn, collect_images, get_template
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model.tokenization import tokenize_turns


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings (the reference defaults: greedy, 1024 new tokens, one beam).

    Attributes:
        temperature: 0 = greedy; > 0 samples with this temperature.
        top_p: nucleus sampling mass (sampling only).
        num_beams: beam search width (1 = none).
        max_new_tokens / min_new_tokens: bounds on the answer length in tokens.
        seed: seeds torch before sampling, for reproducible samples.
    """

    temperature: float = 0.0
    top_p: float | None = None
    num_beams: int = 1
    max_new_tokens: int = 1024
    min_new_tokens: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.num_beams < 1 or self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise VilaM3Error(f"Invalid generation settings: {self}.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise VilaM3Error(f"top_p must be in (0, 1], got {self.top_p}.")


@dataclass
class GenerationRequest:
    """One conversation to answer: turns (images inside them), or a user text plus ``images``.

    A plain text without ``<image>`` gets one ``"<image>\\n"`` per image in front (as VILA's ``run_vila``);
    ``<image-placeholder>`` is accepted as an alias of ``<image>``.
    """

    turns: Sequence[Turn] | str
    images: Sequence[Any] = field(default_factory=tuple)

    def as_turns(self) -> list[Turn]:
        if not isinstance(self.turns, str):
            if self.images:
                raise VilaM3Error("Pass images inside the turns (Turn.images) or with a text prompt, not both.")
            return list(self.turns)
        text = self.turns.replace("<image-placeholder>", IMAGE_TOKEN)
        if self.images and IMAGE_TOKEN not in text:
            text = IMAGE_TOKEN + "\n" + (IMAGE_TOKEN + "\n") * (len(self.images) - 1) + text
        return [Turn("user", text, list(self.images))]


@dataclass
class GenerationOutput:
    """An answer with its accounting: ``prompt_tokens`` counts image rows; ``seconds`` is this request's share
    of its batch's wall time."""

    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


def stop_token_ids(tokenizer: Any, conv_mode: str, llm: Any = None) -> tuple[list[int], list[str]]:
    """Single-token stop ids and multi-token stop strings for ``conv_mode``, plus the tokenizer/LLM EOS ids."""
    ids: list[int] = []
    strings: list[str] = []
    for stop in get_template(conv_mode).stop:
        token_id = tokenizer.convert_tokens_to_ids(stop)  # a single (special) token of the vocabulary?
        if token_id is not None and (token_id != tokenizer.unk_token_id or stop == tokenizer.unk_token):
            ids.append(token_id)
            continue
        encoded = tokenizer(stop, add_special_tokens=False).input_ids
        if len(encoded) == 1:
            ids.append(encoded[0])
        else:
            strings.append(stop)
    eos = [tokenizer.eos_token_id]
    if llm is not None and llm.generation_config is not None:
        eos.append(llm.generation_config.eos_token_id)
    for value in eos:
        for token in value if isinstance(value, list) else [value]:
            if token is not None and token not in ids:
                ids.append(int(token))
    return ids, strings


def _hf_generation_kwargs(settings: GenerationSettings, tokenizer: Any, eos_ids: list[int], stops: list[str]) -> dict:
    from transformers import GenerationConfig

    sample = settings.temperature > 0
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens or None,
        do_sample=sample,
        temperature=settings.temperature if sample else None,
        top_p=settings.top_p if sample else None,
        top_k=None,
        num_beams=settings.num_beams,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0],
        use_cache=True,
        stop_strings=stops or None,
    )
    kwargs: dict[str, Any] = {"generation_config": config}
    if stops:
        kwargs["tokenizer"] = tokenizer
    return kwargs


def _decode(tokenizer: Any, ids: torch.Tensor, eos_ids: Sequence[int], stops: Sequence[str]) -> tuple[str, int]:
    """Text of generated ``ids`` up to the first stop token, and the number of tokens generated (stop included;
    the padding that fills a batch row after it is not counted)."""
    tokens = ids.tolist()
    n_new = len(tokens)
    for position, token in enumerate(tokens):
        if token in eos_ids:
            n_new = position + 1
            break
    text = tokenizer.decode(tokens[:n_new], skip_special_tokens=True).strip()
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)].strip()
    return text, n_new


def generate_batch(
    vlm: Any,
    requests: Sequence[GenerationRequest | Sequence[Turn] | str],
    batch_size: int = 8,
    conv_mode: str | None = None,
    progress: bool = False,
    **settings: Any,
) -> list[GenerationOutput]:
    """Answer ``requests`` with a :class:`~vila_m3_core.model.VilaM3` in left-padded batches.

    Requests are sorted by prompt length so that batches pad little; answers come back in input order.

    Args:
        vlm: the model.
        requests: :class:`GenerationRequest`, a list of turns, or a user text (no images).
        batch_size: conversations per forward pass.
        conv_mode: template (default ``vlm.conv_mode``).
        progress: show a tqdm bar over batches.
        **settings: :class:`GenerationSettings` fields.
    """
    config = GenerationSettings(**settings)
    conv_mode = get_template(conv_mode or vlm.conv_mode).name
    tokenizer = vlm.tokenizer
    prepared = []
    for request in requests:
        if not isinstance(request, GenerationRequest):
            request = GenerationRequest(request)
        turns = request.as_turns()
        ids = tokenize_turns(turns, tokenizer, conv_mode)
        prepared.append((ids, collect_images(turns)))
    eos_ids, stops = stop_token_ids(tokenizer, conv_mode, vlm.llm)
    kwargs = _hf_generation_kwargs(config, tokenizer, eos_ids, stops)
    order = sorted(range(len(prepared)), key=lambda i: len(prepared[i][0]))
    outputs: list[GenerationOutput | None] = [None] * len(prepared)
    batches = [order[i : i + max(1, batch_size)] for i in range(0, len(order), max(1, batch_size))]
    for batch in tqdm(batches, desc="generate", disable=not progress):
        started = time.perf_counter()
        images = [image for i in batch for image in prepared[i][1]]
        with torch.inference_mode():
            image_embeds = vlm.encode_images(vlm.preprocess_images(images)) if images else None
            inputs = vlm.splice([prepared[i][0] for i in batch], image_embeds, padding_side="left")
            room = vlm.max_length - inputs["inputs_embeds"].shape[1]
            if room < 1:
                raise VilaM3Error(f"The prompt fills the whole context of {vlm.max_length} tokens; shorten it.")
            if room < config.max_new_tokens:
                kwargs["generation_config"].max_new_tokens = room
            if config.seed is not None:
                torch.manual_seed(config.seed)
            generated = vlm.llm.generate(**inputs, **kwargs)
            kwargs["generation_config"].max_new_tokens = config.max_new_tokens
        seconds = (time.perf_counter() - started) / len(batch)
        for row, index in enumerate(batch):
            text, n_new = _decode(tokenizer, generated[row], eos_ids, stops)
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            outputs[index] = GenerationOutput(text, prompt_tokens, n_new, seconds)
    return outputs  # type: ignore[return-value]


def generate_text_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int = 8,
    stop: Sequence[str] = (),
    progress: bool = False,
    **settings: Any,
) -> list[str]:
    """Generate from a plain causal LM for already rendered ``prompts`` in left-padded batches.

    Args:
        model, tokenizer: any ``AutoModelForCausalLM`` and its tokenizer (e.g. the GREEN judge).
        prompts: fully rendered prompt strings (the tokenizer adds its special tokens as usual).
        stop: extra stop strings besides the tokenizer's EOS.
        **settings: :class:`GenerationSettings` fields.

    Returns:
        The generated texts, in input order.
    """
    config = GenerationSettings(**settings)
    eos_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stop_strings = []
    for text in stop:
        encoded = tokenizer(text, add_special_tokens=False).input_ids
        (eos_ids if len(encoded) == 1 else stop_strings).append(encoded[0] if len(encoded) == 1 else text)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = _hf_generation_kwargs(config, tokenizer, eos_ids, stop_strings)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[str] = [""] * len(prompts)
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress):
            batch = order[start : start + batch_size]
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(device)
            if config.seed is not None:
                torch.manual_seed(config.seed)
            with torch.inference_mode():
                generated = model.generate(**encoded, **kwargs)
            new = generated[:, encoded["input_ids"].shape[1] :]
            for row, index in enumerate(batch):
                results[index] = _decode(tokenizer, new[row], eos_ids, stop)[0]
    finally:
        tokenizer.padding_side = padding_side
    return results
