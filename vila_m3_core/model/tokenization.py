"""Tokenization with image sentinels and SFT label masking, as VILA @355fda9 did it.

The prompt is split on ``<image>``; each chunk is tokenized on its own (the tokenizer adds BOS to every chunk); BOS is
kept once at the very start and the sentinel :data:`IMAGE_TOKEN_INDEX` (-200) goes between chunks. Tokenizing chunk
by chunk changes SentencePiece's leading-space handling at chunk starts, and that is what the released weights saw,
so it is reproduced exactly. With ``llama_3`` the template text itself begins with ``<|begin_of_text|>`` and the
tokenizer adds BOS too: two BOS tokens, as in training.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from vila_m3_core.conversation import IMAGE_TOKEN, Turn, render_prompt
from vila_m3_core.errors import VilaM3Error

IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100
SENTINEL_TOKEN = "[VILA-SENTINEL]"

log = logging.getLogger(__name__)


def _sentencepiece_llama_class() -> type:
    """transformers 4.37's slow ``LlamaTokenizer(legacy=False)`` on transformers 5's SentencePiece backend.

    VILA trained 3B/13B with that slow tokenizer. transformers 5's ``LlamaTokenizer`` differs on text that starts
    with a space (e.g. the chunk after an ``<image>`` in the MRI prompt): 4.37 keeps a lone ``▁`` piece there.
    The two methods below are the 4.37 ones; ``tests/data/tokenizer_v1_reference_ids.json`` (made with 4.37.2)
    pins the ids.
    """
    from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend

    class SentencePieceLlamaTokenizer(SentencePieceBackend):
        def tokenize(self, text: str, **kwargs: Any) -> list[str]:
            if self.legacy or not text:
                return super().tokenize(text, **kwargs)
            tokens = super().tokenize(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "), **kwargs)
            if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in self.all_special_tokens:
                tokens = tokens[1:]
            return tokens

        def convert_tokens_to_string(self, tokens: list[str]) -> str:
            if tokens and tokens[0].startswith(SPIECE_UNDERLINE):
                tokens = [tokens[0][1:], *tokens[1:]]
            out, pending = "", []
            for token in tokens:
                if token in self.all_special_tokens:
                    out += self.sp_model.decode(pending) + token
                    pending = []
                else:
                    pending.append(token)
            return out + self.sp_model.decode(pending)

    return SentencePieceLlamaTokenizer


def load_tokenizer(llm_dir: str | Path) -> Any:
    """Load the tokenizer saved in a checkpoint's ``llm/`` folder, right padding as in training.

    A SentencePiece ``tokenizer.model`` (3B/13B) loads with 4.37 slow-tokenizer semantics (see
    :func:`_sentencepiece_llama_class`); a ``tokenizer.json`` (8B, Llama 3) loads as the fast tokenizer, as VILA did.
    A missing pad token falls back to unk, then eos.
    """
    from transformers import AutoTokenizer

    llm_dir = Path(llm_dir)
    if (llm_dir / "tokenizer.model").is_file():  # VILA loaded it with use_fast=False, even next to a tokenizer.json
        tokenizer = _sentencepiece_llama_class().from_pretrained(
            str(llm_dir), legacy=False, special_tokens_pattern="bos", padding_side="right"
        )
    elif (llm_dir / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(llm_dir), padding_side="right")
    else:
        raise VilaM3Error(f"No tokenizer in {llm_dir}: expected tokenizer.model (3B/13B) or tokenizer.json (8B).")
    if len(tokenizer) == 0:
        raise VilaM3Error(f"The tokenizer in {llm_dir} has an empty vocabulary; the tokenizer files are broken.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def tokenize_with_images(prompt: str, tokenizer: Any) -> list[int]:
    """Token ids of ``prompt`` with one :data:`IMAGE_TOKEN_INDEX` per ``<image>`` (VILA's ``tokenizer_image_token``).

    Returns:
        A list of ids; BOS once at the start when the tokenizer adds one, the chunks' own BOS removed.
    """
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_TOKEN)]
    bos = tokenizer.bos_token_id
    offset = 1 if chunks[0] and bos is not None and chunks[0][0] == bos else 0
    ids: list[int] = [chunks[0][0]] if offset else []
    for index, chunk in enumerate(chunks):
        if index:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[offset:])
    return ids


def tokenize_turns(
    turns: Sequence[Turn], tokenizer: Any, conv_mode: str, add_generation_prompt: bool = True
) -> list[int]:
    """Render ``turns`` with ``conv_mode`` and tokenize with image sentinels."""
    return tokenize_with_images(render_prompt(turns, conv_mode, add_generation_prompt), tokenizer)


@lru_cache(maxsize=8)
def _tokenizer_with_sentinel(tokenizer: Any) -> tuple[Any, int]:
    """A copy of ``tokenizer`` that knows the sentinel as a special token (the original stays untouched)."""
    sentinel_tokenizer = copy.deepcopy(tokenizer)
    sentinel_tokenizer.add_special_tokens({"additional_special_tokens": [SENTINEL_TOKEN]})
    return sentinel_tokenizer, sentinel_tokenizer.convert_tokens_to_ids(SENTINEL_TOKEN)


def build_sft_labels(turns: Sequence[Turn], tokenizer: Any, conv_mode: str) -> tuple[list[int], list[int]]:
    """Input ids and labels of a training conversation (VILA's ``preprocess_conversation``).

    Every assistant message and its turn terminator (``</s>``, ``<|eot_id|>``, ``<|end_of_text|>``) are targets;
    everything else (system, user text, image sentinels) is :data:`IGNORE_INDEX`. The mask is found as the reference
    did: render the conversation again with each assistant message replaced by a sentinel token, drop each sentinel
    and the token after it, and greedily align that template with the real ids; unmatched ids are the targets.
    Messages are stripped of surrounding whitespace first, as in training.

    Returns:
        ``(input_ids, labels)`` of equal length.
    """
    turns = [Turn(t.role, t.text.strip(), t.images) for t in turns]
    input_ids = tokenize_turns(turns, tokenizer, conv_mode, add_generation_prompt=False)
    sentinel_tokenizer, sentinel_id = _tokenizer_with_sentinel(tokenizer)
    masked_turns = [Turn(t.role, SENTINEL_TOKEN, t.images) if t.role == "assistant" else t for t in turns]
    for retried in (False, True):
        template = tokenize_turns(masked_turns, sentinel_tokenizer, conv_mode, add_generation_prompt=False)
        keep = [True] * len(template)
        for k in range(len(template) - 1):
            if template[k] == sentinel_id:
                keep[k] = keep[k + 1] = False
                if retried and k > 0:  # a token merged into the sentinel's left neighbour
                    keep[k - 1] = False
        template = [token for token, kept in zip(template, keep, strict=True) if kept]
        labels, position = [], 0
        for token in input_ids:
            if position < len(template) and token == template[position]:
                position += 1
                labels.append(IGNORE_INDEX)
            else:
                labels.append(token)
        if position == len(template):
            return input_ids, labels
    log.warning("Could not align the label template of a conversation; all its tokens are masked.")
    return input_ids, [IGNORE_INDEX] * len(input_ids)
