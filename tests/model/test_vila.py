"""The VLM on tiny random-weight checkpoints in the released layout (real architectures, CPU)."""

import json
import shutil

import numpy as np
import pytest
import torch

from vila_m3_core.conversation import Turn
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model import GenerationRequest, VilaM3
from vila_m3_core.model.generation import stop_token_ids
from vila_m3_core.model.tiny import random_image
from vila_m3_core.model.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX


def test_released_layout_on_disk(tiny_vicuna):
    from safetensors import safe_open

    config = json.loads((tiny_vicuna / "config.json").read_text())
    assert config["model_type"] == "llava_llama" and config["mm_vision_select_layer"] == -2
    assert {"llm_cfg", "vision_tower_cfg", "mm_projector_cfg"} <= set(config)
    with safe_open(str(tiny_vicuna / "mm_projector" / "model.safetensors"), "pt") as f:
        assert sorted({k.rsplit(".", 1)[0] for k in f.keys()}) == ["layers.1", "layers.2", "layers.4"]
    with safe_open(str(tiny_vicuna / "vision_tower" / "model.safetensors"), "pt") as f:
        assert all(k.startswith("vision_model.") for k in f.keys())
    assert (tiny_vicuna / "llm" / "tokenizer.model").is_file()


def test_vision_features_are_hidden_states_minus_2(vicuna_model):
    pixels = vicuna_model.preprocess_images([random_image(0)])
    with torch.no_grad():
        ours = vicuna_model.vision_features(pixels)
        full = vicuna_model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
        embeds = vicuna_model.encode_images(pixels)
    assert ours.shape == (1, 729, 32)
    torch.testing.assert_close(ours, full)
    assert embeds.shape == (1, 196, 64)


def test_image_preprocessing_matches_reference_pipeline(vicuna_model):
    image = random_image(3, (420, 300))
    expected = np.asarray(image.resize((384, 384), resample=3), dtype=np.float32) / 255.0
    expected = (torch.from_numpy(expected).permute(2, 0, 1) - 0.5) / 0.5
    got = vicuna_model.image_processor([image])[0]
    torch.testing.assert_close(got, expected)
    assert vicuna_model.image_processor([np.zeros((5, 6), dtype=np.uint8)]).shape == (1, 3, 384, 384)


def test_splice_positions_and_labels(vicuna_model):
    d = vicuna_model.llm.config.hidden_size
    images = torch.arange(2 * 196 * d, dtype=torch.float32).reshape(2, 196, d) + 1000
    ids = [[1, 5, IMAGE_TOKEN_INDEX, 6, IMAGE_TOKEN_INDEX, 7], [1, 8]]
    labels = [[IGNORE_INDEX, 5, IGNORE_INDEX, 6, IGNORE_INDEX, 7], [IGNORE_INDEX, 8]]
    out = vicuna_model.splice(ids, images, labels, padding_side="right")
    embed = vicuna_model.llm.get_input_embeddings()
    assert out["inputs_embeds"].shape == (2, 4 + 2 * 196, d)
    row = out["inputs_embeds"][0]
    torch.testing.assert_close(row[2:198], images[0])  # first image right after "1 5"
    torch.testing.assert_close(row[199:395], images[1])  # second image after token 6
    torch.testing.assert_close(row[198], embed.weight[6])
    assert out["labels"][0, 2:198].eq(IGNORE_INDEX).all() and out["labels"][0, 198] == 6
    assert out["labels"][0, -1] == 7 and out["attention_mask"][1].sum() == 2
    assert out["attention_mask"][1, :2].tolist() == [1, 1]  # right padding
    left = vicuna_model.splice(ids, images, padding_side="left")
    assert left["attention_mask"][1, -2:].tolist() == [1, 1] and left["attention_mask"][1, 0] == 0


def test_forward_with_labels_returns_loss_and_trains(vicuna_model):
    model = vicuna_model
    ids = [[1, IMAGE_TOKEN_INDEX, 100, 200, 300]]
    labels = [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 200, 300]]
    pixels = model.preprocess_images([random_image(1)])
    model.set_trainable(vision_tower=False, mm_projector=True, llm=False)
    assert not any(p.requires_grad for p in model.vision_tower.parameters())
    assert all(p.requires_grad for p in model.mm_projector.parameters())
    out = model(ids, images=pixels, labels=labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.mm_projector.layers[2].weight.grad is not None
    assert model.llm.lm_head.weight.grad is None
    model.zero_grad(set_to_none=True)
    model.set_trainable(True, True, True)
    model.set_gradient_checkpointing(True)
    model.train()
    padded = torch.tensor([[1, IMAGE_TOKEN_INDEX, 100, 200, 300], [1, 100, 200, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    loss = model(padded, images=pixels, attention_mask=mask, labels=padded.masked_fill(padded < 0, -100)).loss
    loss.backward()
    assert model.vision_tower.embeddings.patch_embedding.weight.grad is not None
    model.set_gradient_checkpointing(False)
    model.zero_grad(set_to_none=True)
    model.requires_grad_(False)
    model.eval()


def test_save_load_round_trip_identical_logits(vicuna_model, tmp_path):
    saved = vicuna_model.save_pretrained(tmp_path / "copy")
    reloaded = VilaM3.from_pretrained(saved, device="cpu")
    ids = [[1, IMAGE_TOKEN_INDEX, 319, 29871]]
    pixels = vicuna_model.preprocess_images([random_image(2)])
    with torch.no_grad():
        a = vicuna_model(ids, images=pixels).logits
        b = reloaded(ids, images=pixels).logits
    assert torch.equal(a, b)
    assert json.loads((saved / "config.json").read_text()) == vicuna_model.config.raw
    assert reloaded.conv_mode == "vicuna_v1"
    original = {p.name for p in (vicuna_model.location.path).rglob("*") if p.is_file()}
    assert original <= {p.name for p in saved.rglob("*") if p.is_file()}


REQUESTS = [
    GenerationRequest("Is there a fracture?", (random_image(4),)),
    GenerationRequest("Describe the lungs in this chest x-ray, please, in detail.", (random_image(5),)),
    GenerationRequest("No image here."),
    GenerationRequest([Turn("user", "<image>\n<image>\nCompare.", [random_image(6), random_image(7)])]),
    GenerationRequest("Short?", (random_image(8),)),
]


@pytest.mark.parametrize("model_fixture", ["vicuna_model", "llama3_model"])
def test_batched_greedy_equals_sequential(model_fixture, request):
    model = request.getfixturevalue(model_fixture)
    batched = model.generate_batch(REQUESTS, batch_size=3, max_new_tokens=6)
    one_by_one = [model.generate(r.turns, r.images, max_new_tokens=6) for r in REQUESTS]
    assert batched == one_by_one
    assert all(isinstance(t, str) and t for t in batched)


def test_sampling_is_seeded(vicuna_model):
    kwargs = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8}
    a = vicuna_model.generate("Hello", seed=3, **kwargs)
    b = vicuna_model.generate("Hello", seed=3, **kwargs)
    assert a == b
    assert vicuna_model.generate("Hello", num_beams=2, max_new_tokens=4)


def _force_tokens(model, token_ids, runner_up=None):
    """Make the LM head emit ``token_ids`` in order (a hook on the real model; the generation code is real)."""
    state = {"step": 0}

    def hook(module, inputs, output):
        forced = torch.full_like(output, -1e4)
        if runner_up is not None:
            forced[..., runner_up] = 0
        forced[..., token_ids[min(state["step"], len(token_ids) - 1)]] = 1e4
        state["step"] += 1
        return forced

    return model.llm.lm_head.register_forward_hook(hook)


@pytest.mark.parametrize("stop", ["<|eot_id|>", "<|end_of_text|>"])
def test_llama3_stops_on_both_stop_tokens(llama3_model, stop):
    tok = llama3_model.tokenizer
    word = tok("yes", add_special_tokens=False).input_ids
    handle = _force_tokens(llama3_model, [*word, tok.convert_tokens_to_ids(stop), *word])
    try:
        out = llama3_model.generate("Q?", max_new_tokens=20, return_details=True)
    finally:
        handle.remove()
    assert out.text == "yes" and out.new_tokens == len(word) + 1


def test_vicuna_stops_on_eos(vicuna_model):
    yes = vicuna_model.tokenizer.convert_tokens_to_ids("\u2581yes")
    handle = _force_tokens(vicuna_model, [yes, 2, yes])
    try:
        out = vicuna_model.generate("Q?", max_new_tokens=20, return_details=True)
    finally:
        handle.remove()
    assert out.text == "yes" and out.new_tokens == 2
    assert stop_token_ids(vicuna_model.tokenizer, "vicuna_v1", vicuna_model.llm) == ([2], [])


def test_min_new_tokens_delays_stop(vicuna_model):
    handle = _force_tokens(vicuna_model, [2], runner_up=vicuna_model.tokenizer.convert_tokens_to_ids("\u2581no"))
    try:
        out = vicuna_model.generate("Q?", max_new_tokens=5, min_new_tokens=3, return_details=True)
    finally:
        handle.remove()
    assert out.new_tokens == 4 and out.text == "no no no"  # three forced "no", then the stop


# ---------------------------------------------------------------- bad input


def test_missing_and_partial_checkpoint(tiny_vicuna, tmp_path):
    with pytest.raises(VilaM3Error, match="not found"):
        VilaM3.from_pretrained(tmp_path / "nothing-here")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_vicuna, partial)
    shutil.rmtree(partial / "mm_projector")
    (partial / "vision_tower" / "preprocessor_config.json").unlink()
    with pytest.raises(VilaM3Error, match=r"missing: mm_projector/config.json, mm_projector/\*.safetensors, "
                                          r"vision_tower/preprocessor_config.json"):  # fmt: skip
        VilaM3.from_pretrained(partial)


def test_unknown_model_type(tiny_vicuna, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_vicuna, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "qwen2_vl"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(VilaM3Error, match="model_type 'qwen2_vl'"):
        VilaM3.from_pretrained(other)


def test_image_count_mismatch(vicuna_model):
    with pytest.raises(VilaM3Error, match=r"2 <image> token\(s\) but 1 image"):
        vicuna_model.generate([Turn("user", "<image><image> what?", [random_image(0)])])


def test_unreadable_image(vicuna_model, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("plain text")
    with pytest.raises(VilaM3Error, match="Cannot read"):
        vicuna_model.generate("What?", images=[bad])


def test_prompt_longer_than_context(vicuna_model, monkeypatch):
    monkeypatch.setattr(vicuna_model.llm.config, "tokenizer_model_max_length", 300)
    with pytest.raises(
        VilaM3Error,
        match=r"432 tokens after image expansion \(40 text tokens \+ 2 image\(s\) x 196\), longer than the model's context of 300",
    ):
        vicuna_model.generate("<image><image>Compare", images=[random_image(0), random_image(1)])


def test_unknown_conv_mode(vicuna_model):
    with pytest.raises(VilaM3Error, match="Unknown conv_mode"):
        vicuna_model.generate("Hi", conv_mode="alpaca")


def test_bfloat16_load_and_numpy_image(tiny_llama3):
    model = VilaM3.from_pretrained(tiny_llama3, dtype="bfloat16", device="cpu", conv_mode="llama_3")
    assert model.dtype == torch.bfloat16 and model.vision_tower.dtype == torch.bfloat16
    array = np.asarray(random_image(9), dtype=np.float32) / 255.0  # float array in 0..1
    out = model.generate("What is shown?", images=[array], max_new_tokens=3, return_details=True)
    assert out.new_tokens <= 3 and out.prompt_tokens > model.tokens_per_image
    with pytest.raises(VilaM3Error, match="Unknown dtype"):
        VilaM3.from_pretrained(tiny_llama3, dtype="int8")
