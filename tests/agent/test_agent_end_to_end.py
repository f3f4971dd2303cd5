"""The loop end to end: a tiny random-weight VILA-M3 checkpoint (real tokenizer, vision tower, LLM, templates) and
the real VISTA3D expert (MONAI vista3d132, random narrow weights) built from its card's runner.

A random model cannot choose to call an expert, so :class:`DecidingVLM` runs the real model on every prompt and
only replaces the text of the first answer by the trained trigger sentence; everything else is real: card text
and image tokens through the real tokenizer, the overlay through the vision tower, the expert on the NIfTI.
"""

import json
from pathlib import Path

import pytest

from vila_m3_core.agent import Agent
from vila_m3_core.agent_cli import run_chat


class DecidingVLM:
    """The real VLM, with the text of chosen answers replaced (the decision a trained model would make)."""

    def __init__(self, vlm, decisions):
        self.vlm = vlm
        self.decisions = list(decisions)
        self.real_outputs = []

    def generate(self, turns, return_details=False, **gen):
        output = self.vlm.generate(turns, return_details=True, **gen)
        self.real_outputs.append(output)
        if self.decisions:
            decision = self.decisions.pop(0)
            if decision is not None:
                output.text = decision
        return output if return_details else output.text


@pytest.fixture(scope="module")
def vista3d_bundle(tmp_path_factory):
    import torch
    from monai.networks.nets import vista3d132

    torch.manual_seed(0)
    bundle = tmp_path_factory.mktemp("expert_vista3d")
    (bundle / "models").mkdir()
    torch.save(vista3d132(encoder_embed_dim=8, in_channels=1).state_dict(), bundle / "models" / "model.pt")
    return bundle


def _vista3d_config(bundle):
    return {"VISTA3D": {"bundle_dir": str(bundle), "encoder_embed_dim": 8, "roi_size": (32, 32, 32), "device": "cpu"}}


def test_tiny_checkpoint_with_real_vista3d(llama3_model, ct_nifti, vista3d_bundle, tmp_path):
    # llama_3 (8B style) here; the chat test below covers vicuna_v1 (3B/13B style)
    model = llama3_model
    vlm = DecidingVLM(model, ["This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. ", None])
    agent = Agent(
        vlm, expert_config=_vista3d_config(vista3d_bundle), output_dir=tmp_path, generation={"max_new_tokens": 4}
    )
    answer = agent.ask(ct_nifti, "Is there a hepatic tumor in the image")
    first, second = vlm.real_outputs
    # the second prompt holds the cards, two images (slice + overlay) and the whole history: longer than the first
    assert second.prompt_tokens > first.prompt_tokens + model.tokens_per_image
    assert answer.text == second.text and 0 < second.new_tokens <= 4
    (expert,) = answer.trace.of_type("expert")
    assert expert["status"] == "ok" and expert["data"]["group"] == "hepatic tumor"
    segmentation = expert["files"]["segmentation"]
    import nibabel as nib

    assert nib.load(segmentation).shape == nib.load(ct_nifti).shape  # saved in the original image space
    trace = json.loads(json.dumps(answer.trace.to_dict()))
    assert [step["prompt_tokens"] for step in trace["steps"] if step["type"] == "generation"] == [
        first.prompt_tokens,
        second.prompt_tokens,
    ]
    assert trace["seconds"]["expert"] > 0 and trace["seconds"]["generation"] > 0


def test_tiny_checkpoint_without_a_call_answers_directly(vicuna_model, cxr_png, tmp_path):
    agent = Agent(vicuna_model, output_dir=tmp_path, generation={"max_new_tokens": 3})
    answer = agent.ask(cxr_png, "What is shown?")
    (generation,) = answer.trace.of_type("generation")
    assert generation["prompt_tokens"] > 300  # the 1373-character cards and the image rows
    assert answer.text == generation["output"] and answer.trace.of_type("expert") == []


def test_chat_verb_writes_answer_trace_and_files(vicuna_model, ct_nifti, vista3d_bundle, tmp_path, capsys):
    vlm = DecidingVLM(vicuna_model, ["I segmented the entire image using <VISTA3D(everything)>."])
    out = tmp_path / "chat"
    record = run_chat(
        image=ct_nifti,
        prompt="Segment the entire image.",
        slice="auto",
        experts="vista3d,cxr",
        output_dir=str(out),
        expert_config=json.dumps(
            {k: {**v, "roi_size": [32, 32, 32]} for k, v in _vista3d_config(vista3d_bundle).items()}
        ),
        max_new_tokens=4,
        vlm=vlm,
    )
    printed = capsys.readouterr().out
    assert printed.startswith("I segmented the entire image using <VISTA3D(everything)>.\n[expert] The results are")
    assert record["modality"] == "CT" and record["conversation"][-1]["role"] == "expert"
    trace = json.loads((out / "trace.json").read_text())
    assert trace["steps"][0]["modality_source"] == "file"
    assert json.loads((out / "answer.json").read_text())["answer"] == record["answer"]
    assert (out / "input_0.jpg").exists()
    files = record["files"]
    assert any(key.endswith("/segmentation") for key in files) and all(Path(p).is_file() for p in files.values())


def test_chat_command_line(tiny_vicuna, cxr_png, tmp_path, capsys):
    from vila_m3_core.cli import main

    out = tmp_path / "cli"
    args = ["chat", "--model_path", str(tiny_vicuna), "--image", cxr_png, "--prompt", "What is shown?"]
    main([*args, "--max_new_tokens", "2", "--output_dir", str(out), "--device", "cpu", "--experts", "cxr"])
    answer = json.loads((out / "answer.json").read_text())
    assert capsys.readouterr().out.splitlines()[0] == answer["answer"]
    assert answer["modality"] == "CXR" and (out / "trace.json").is_file()
    with pytest.raises(SystemExit) as stopped:
        main(["chat", "--image", cxr_png, "--slice", "sideways", "--prompt", "Q"])
    assert stopped.value.code == 2 and "--slice takes auto, middle or a slice number" in capsys.readouterr().err
