"""Token ids against the training-time tokenizer (transformers 4.37.2 slow LlamaTokenizer, legacy=False).

tests/data/tokenizer_v1_reference_ids.json was generated once in a separate environment with that version
(tests/data/make_tokenizer_reference_ids.py) from the SentencePiece file that ships in mistral-common.
"""

import hashlib
import json
from pathlib import Path

import pytest

from vila_m3_core.conversation import Turn
from vila_m3_core.model.tiny import sentencepiece_model_path
from vila_m3_core.model.tokenization import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    build_sft_labels,
    load_tokenizer,
    tokenize_turns,
    tokenize_with_images,
)

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "tokenizer_v1_reference_ids.json").read_text())


@pytest.fixture(scope="module")
def sp_tokenizer(tiny_vicuna):
    return load_tokenizer(tiny_vicuna / "llm")


@pytest.fixture(scope="module")
def bpe_tokenizer(tiny_llama3):
    return load_tokenizer(tiny_llama3 / "llm")


def test_reference_file_is_the_shipped_tokenizer():
    assert hashlib.sha256(sentencepiece_model_path().read_bytes()).hexdigest() == REFERENCE["tokenizer_sha256"]


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_chunked_ids_equal_training_tokenizer(sp_tokenizer, case):
    assert tokenize_with_images(case["prompt"], sp_tokenizer) == case["chunked_ids"]
    assert sp_tokenizer(case["prompt"]).input_ids == case["whole_ids"]
    text_ids = [i for i in case["chunked_ids"] if i != IMAGE_TOKEN_INDEX]
    assert sp_tokenizer.decode(text_ids, skip_special_tokens=False) == case["chunked_decoded"]


def test_special_ids(sp_tokenizer):
    assert (sp_tokenizer.bos_token_id, sp_tokenizer.eos_token_id, sp_tokenizer.pad_token_id) == (1, 2, 0)
    assert len(sp_tokenizer) == 32000


def test_llama3_has_two_bos_as_in_training(bpe_tokenizer):
    ids = tokenize_turns([Turn("user", "<image>\nWhat is shown?", ["img"])], bpe_tokenizer, "llama_3")
    bos = bpe_tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert ids[:2] == [bos, bos] and ids[2] != bos
    assert ids.count(IMAGE_TOKEN_INDEX) == 1


def test_image_sentinels_between_chunks(sp_tokenizer):
    ids = tokenize_with_images("<image><image>\nTwo images", sp_tokenizer)
    assert ids[0] == 1 and ids[1:3] == [IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX] and ids.count(1) == 1


def _targets(ids, labels):
    return [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]


def test_sft_labels_vicuna(sp_tokenizer):
    turns = [Turn("user", "<image>\nQ1?", ["i"]), Turn("assistant", " yes "), Turn("user", "Q2?"),
             Turn("assistant", "No, it is not.")]  # fmt: skip
    ids, labels = build_sft_labels(turns, sp_tokenizer, "vicuna_v1")
    assert len(ids) == len(labels)
    targets = _targets(ids, labels)
    assert sp_tokenizer.decode(targets, skip_special_tokens=False) == "yes</s> No, it is not.</s>"
    assert targets.count(2) == 2  # each answer is followed by its terminator </s>
    assert labels[ids.index(IMAGE_TOKEN_INDEX)] == IGNORE_INDEX


def test_sft_labels_llama3(bpe_tokenizer):
    turns = [Turn("user", "<image>\nQ1?", ["i"]), Turn("assistant", "A1"), Turn("user", "Q2?"),
             Turn("assistant", "A2")]  # fmt: skip
    ids, labels = build_sft_labels(turns, bpe_tokenizer, "llama_3")
    decoded = bpe_tokenizer.decode(_targets(ids, labels), skip_special_tokens=False)
    assert decoded == "A1<|eot_id|>A2<|end_of_text|>"
