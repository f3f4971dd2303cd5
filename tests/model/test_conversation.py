"""Template renderings against the exact strings of the reference (VILA @355fda9 conversation.py)."""

import pytest

from vila_m3_core.conversation import (
    Turn,
    default_conv_mode,
    get_template,
    merge_expert_turns,
    render_prompt,
    stop_strings,
)
from vila_m3_core.errors import VilaM3Error

VICUNA_SYS = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
LLAMA3_SYS = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
    "assistant. You are able to understand the visual content that the user provides, and assist the user with a "
    "variety of tasks using natural language."
)
ONE_TURN = [Turn("user", "<image>\nWhat is shown?", ["img"])]
FOUR_TURNS = [
    Turn("user", "<image>\nQ1?", ["img"]),
    Turn("assistant", "A1"),
    Turn("user", "Q2?"),
    Turn("assistant", "A2"),
]


def test_generation_prompts_exact():
    assert render_prompt(ONE_TURN, "vicuna_v1") == VICUNA_SYS + " USER: <image>\nWhat is shown? ASSISTANT:"
    assert render_prompt(ONE_TURN, "llama_3") == (
        LLAMA3_SYS + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image>\nWhat is shown?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert render_prompt(ONE_TURN, "hermes-2") == (
        "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<image>\nWhat is shown?<|im_end|>"
        "<|im_start|>assistant\n"
    )
    assert render_prompt(ONE_TURN, "plain") == "<image>\nWhat is shown?\n"


def test_training_conversations_exact():
    assert render_prompt(FOUR_TURNS, "vicuna_v1", add_generation_prompt=False) == (
        VICUNA_SYS + " USER: <image>\nQ1? ASSISTANT: A1</s>USER: Q2? ASSISTANT: A2</s>"
    )
    assert render_prompt(FOUR_TURNS, "llama_3", add_generation_prompt=False) == (
        LLAMA3_SYS + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image>\nQ1?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Q2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA2<|end_of_text|>"
    )
    assert render_prompt(FOUR_TURNS, "hermes-2", add_generation_prompt=False) == (
        "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<image>\nQ1?<|im_end|>"
        "<|im_start|>assistant\nA1<|im_end|><|im_start|>user\nQ2?<|im_end|><|im_start|>assistant\nA2<|im_end|>"
    )
    assert render_prompt(FOUR_TURNS, "plain", add_generation_prompt=False) == "<image>\nQ1?\nA1\nQ2?\nA2\n"


def test_multi_turn_generation_prompt_keeps_history():
    turns = FOUR_TURNS[:3]
    assert render_prompt(turns, "v1") == VICUNA_SYS + " USER: <image>\nQ1? ASSISTANT: A1</s>USER: Q2? ASSISTANT:"


def test_expert_turns_merge_into_user_role():
    """The reference's recorded second round: expert result + instruction squashed into one user message."""
    turns = [
        Turn("user", "CARDS<image>This is a CT image.\nIs there a hepatic tumor in the image", ["slice"]),
        Turn("assistant", "This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>."),
        Turn("expert", "The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor. ",
             ["overlay"]),
        Turn("expert", "Use this result to respond to this prompt:\nIs there a hepatic tumor in the image"),
    ]  # fmt: skip
    merged = merge_expert_turns(turns)
    assert [t.role for t in merged] == ["user", "assistant", "user"]
    assert merged[2].images == ["overlay"]
    assert render_prompt(turns, "llama_3").endswith(
        "<|start_header_id|>user<|end_header_id|>\n\nThe results are <image>. The colors in this image describe red: "
        "liver, blue: hepatic tumor. Use this result to respond to this prompt:\nIs there a hepatic tumor in the "
        "image<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert turns[2].role == "expert"  # merging does not modify the caller's turns


def test_stop_strings():
    assert stop_strings("vicuna_v1") == ("</s>",)
    assert stop_strings("llama_3") == ("<|eot_id|>", "<|end_of_text|>")
    assert stop_strings("hermes-2") == ("<|im_end|>",)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("MONAI/Llama3-VILA-M3-3B", "vicuna_v1"),
        ("MONAI/Llama3-VILA-M3-8B", "llama_3"),
        ("MONAI/Llama3-VILA-M3-13B", "vicuna_v1"),
        ("/models/vila-m3-8b/", "llama_3"),
    ],
)
def test_default_conv_mode_per_release(name, expected):
    assert default_conv_mode(name) == expected


def test_default_conv_mode_from_tokenizer():
    assert default_conv_mode("my-finetune", ["a", "<|start_header_id|>"]) == "llama_3"
    assert default_conv_mode("my-finetune", ["<s>", "</s>"]) == "vicuna_v1"


def test_bad_conversations():
    with pytest.raises(VilaM3Error, match="Unknown conv_mode 'chatml'"):
        get_template("chatml")
    with pytest.raises(VilaM3Error, match="alternates"):
        render_prompt([Turn("assistant", "hi")], "vicuna_v1")
    with pytest.raises(VilaM3Error, match="ends with an assistant"):
        render_prompt(FOUR_TURNS, "vicuna_v1")
    with pytest.raises(VilaM3Error, match="Unknown turn role"):
        Turn("system", "x")
