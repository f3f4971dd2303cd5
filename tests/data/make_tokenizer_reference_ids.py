#!/usr/bin/env python
"""Regenerate tests/data/tokenizer_v1_reference_ids.json.

Reference token ids as produced by the *training-time* tokenizer stack of the
VILA-M3 3B/13B checkpoints: transformers==4.37.2, slow ``LlamaTokenizer`` with
``legacy=False``, and VILA's chunk-wise ``tokenizer_image_token``
(VILA commit 355fda9, ``llava/mm_utils.py``).

The SentencePiece model is ``mistral_common/data/tokenizer.model.v1`` shipped
by the ``mistral-common`` PyPI package (32000 pieces, Llama-2 format,
bos=1 eos=2 unk=0).

Run in a throwaway venv (NOT the project venv)::

    python3 -m venv /tmp/tok437
    /tmp/tok437/bin/pip install transformers==4.37.2 sentencepiece protobuf mistral-common
    /tmp/tok437/bin/python tests/data/make_tokenizer_reference_ids.py

No torch is needed.  The script overwrites
``tests/data/tokenizer_v1_reference_ids.json`` next to itself (or the path given
as the first argument).
"""

import hashlib
import json
import os
import re
import sys

import mistral_common
import sentencepiece
import transformers
from transformers import LlamaTokenizer

IMAGE_TOKEN_INDEX = -200
TOKENIZER_REL = "mistral_common/data/tokenizer.model.v1"

S = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

PROMPTS = {
    "a": S + " USER: <image>\nWhat is shown? ASSISTANT:",
    "b": S + " USER: <image>\nWhat is shown? ASSISTANT: A chest x-ray.</s>USER: Is it normal? ASSISTANT:",
    "c": S + " USER: T1(contrast enhanced): <image>, T1: <image>, T2: <image>, FLAIR: <image>"
    " These are different MRI modalities.\nIs there a tumor? ASSISTANT:",
    "d": S + " USER: <image>This is a CT image.\nIs there a hepatic tumor in the image ASSISTANT:"
    " This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. </s>USER:"
    " The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor."
    " Use this result to respond to this prompt:\nIs there a hepatic tumor in the image ASSISTANT:",
    "e": "<image>\nDescribe the image in detail.",
    "f": "no image here, just   spaces and \u00fcn\u00efc\u00f6d\u00e9  \n\n and 123 numbers",
    "g": "<image><image>\n",
    "h": S + " USER: <image>\nWhat is shown? ASSISTANT: yes</s>",
}


def tokenizer_image_token(prompt, tokenizer, image_token_index=IMAGE_TOKEN_INDEX):
    """Literal copy of VILA 355fda9 llava/mm_utils.py (return_tensors=None)."""
    prompt_chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]

    def insert_separator(X, sep):
        return [ele for sublist in zip(X, [sep] * len(X)) for ele in sublist][:-1]

    input_ids = []
    offset = 0
    if len(prompt_chunks) > 0 and len(prompt_chunks[0]) > 0 and prompt_chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(prompt_chunks[0][0])

    for x in insert_separator(prompt_chunks, [image_token_index] * (offset + 1)):
        input_ids.extend(x[offset:])
    return input_ids


def main():
    out = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_v1_reference_ids.json")
    )
    vocab_file = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    with open(vocab_file, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    tok = LlamaTokenizer(vocab_file=vocab_file, legacy=False)
    tok.padding_side = "right"
    assert len(tok) == 32000, len(tok)

    cases = []
    for name, prompt in PROMPTS.items():
        chunked = tokenizer_image_token(prompt, tok)
        whole = tok(prompt).input_ids
        no_img = [i for i in chunked if i != IMAGE_TOKEN_INDEX]
        case = {
            "name": name,
            "prompt": prompt,
            "chunked_ids": chunked,
            "whole_ids": whole,
            "chunked_decoded": tok.decode(no_img, skip_special_tokens=False),
            "chunked_pieces": [
                "<IMAGE:-200>" if i == IMAGE_TOKEN_INDEX else tok.convert_ids_to_tokens(i) for i in chunked
            ],
        }
        if name == "h":
            prefix = tokenizer_image_token(PROMPTS["a"], tok)
            assert chunked[: len(prefix)] == prefix, "prompt a is not a prefix of prompt h"
            ans = chunked[len(prefix) :]
            case["answer_text"] = " yes</s>"
            case["answer_ids"] = ans
            case["answer_pieces"] = tok.convert_ids_to_tokens(ans)
            case["answer_note"] = (
                "chunked_ids[len(chunked_ids of case a):], i.e. ' yes</s>' as produced inside the full sequence"
            )
        cases.append(case)

    data = {
        "generator": f"transformers=={transformers.__version__} LlamaTokenizer(legacy=False) slow, "
        f"sentencepiece=={sentencepiece.__version__}",
        "tokenizer_file": TOKENIZER_REL,
        "mistral_common_version": getattr(mistral_common, "__version__", None)
        or __import__("importlib.metadata").metadata.version("mistral-common"),
        "tokenizer_sha256": sha,
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "unk_id": tok.unk_token_id,
        "image_token_index": IMAGE_TOKEN_INDEX,
        "algorithm": "VILA 355fda9 llava/mm_utils.py tokenizer_image_token (chunks split on '<image>', "
        "tokenizer(chunk).input_ids, BOS kept once at start, -200 between chunks)",
        "cases": cases,
    }

    text = json.dumps(data, indent=1, ensure_ascii=False)
    # Put integer/string lists on one line for readability.
    text = re.sub(
        r"\[\n((?:\s*(?:-?\d+|\"(?:[^\"\\]|\\.)*\"),\n)*\s*(?:-?\d+|\"(?:[^\"\\]|\\.)*\")\n\s*)\]",
        lambda m: "[" + ", ".join(s.strip() for s in m.group(1).strip().split(",\n")) + "]",
        text,
    )
    assert json.loads(text) == data
    with open(out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print("wrote", out, len(text), "bytes")


if __name__ == "__main__":
    main()
