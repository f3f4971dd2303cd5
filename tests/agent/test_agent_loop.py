"""The agent loop with a scripted VLM and small experts: rounds, chaining, problems, errors, follow-ups, trace."""

import json

import pytest
from agent_doubles import DetailedVLM, FailingExpert, FindingsExpert, LegendExpert, ScriptedVLM

from vila_m3_core.agent import Agent
from vila_m3_core.agent_inputs import MRI_SEQUENCES_TEXT
from vila_m3_core.experts.cards import render_model_cards
from vila_m3_core.imaging import LoadedImage

CARDS = render_model_cards()
QUESTION = "Is there a hepatic tumor in the image"
TRIGGER = "This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. "
USER_HEADER = "<|start_header_id|>user<|end_header_id|>\n\n"


def _user_texts(prompt):
    """The user-role messages of a rendered llama_3 prompt."""
    return [part.split("<|eot_id|>")[0] for part in prompt.split(USER_HEADER)[1:]]


def test_one_round_reproduces_the_reference_conversation(ct_nifti, tmp_path):
    vlm = ScriptedVLM([TRIGGER, "yes"])
    expert = LegendExpert()
    agent = Agent(vlm, {"VISTA3D": expert}, output_dir=tmp_path / "out")
    answer = agent.ask(ct_nifti, QUESTION)
    assert answer.text == "yes" and answer.notice == ""
    first, second = vlm.prompts
    # first turn: cards + <image> + modality sentence + prompt (agent_protocol.md §2.1)
    assert _user_texts(first) == [CARDS + "<image>This is a CT image.\n" + QUESTION]
    # second turn: result + instruction merged into one user message (§1.4), two images in order
    assert _user_texts(second)[1] == (
        "The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor. "
        "Use this result to respond to this prompt:\nIs there a hepatic tumor in the image"
    )
    assert len(vlm.images[1]) == 2 and vlm.images[1][1].size == (8, 8)
    assert vlm.images[0][0].size == (24, 20)  # RAS axial slice of the 24x20x10 volume, transposed
    # the expert got the original file, the loaded volume, the parsed argument and the slice the VLM saw
    (request,) = expert.requests
    assert request.image == ct_nifti and request.args == "hepatic tumor" and request.trigger == TRIGGER
    assert isinstance(request.volume, LoadedImage) and request.slice_index == 5
    assert [turn.role for turn in answer.turns] == ["user", "assistant", "expert", "expert", "assistant"]
    overlay = answer.files["turn1/round1/vista3d/overlay_0"]
    assert overlay.endswith(".jpg") and (tmp_path / "out").exists()
    assert answer.files["turn1/round1/vista3d/segmentation"].endswith("segmentation.nii.gz")


def test_vicuna_rendering_of_the_expert_round(ct_nifti, tmp_path):
    vlm = ScriptedVLM([TRIGGER, "yes"], conv_mode="vicuna_v1")
    Agent(vlm, {"VISTA3D": LegendExpert()}, output_dir=tmp_path).ask(ct_nifti, QUESTION)
    assert vlm.prompts[1].endswith(
        f"ASSISTANT: {TRIGGER}</s>USER: The results are <image>. The colors in this image describe red: liver, "
        "blue: hepatic tumor. Use this result to respond to this prompt:\nIs there a hepatic tumor in the image "
        "ASSISTANT:"
    )


def test_chaining_needs_max_rounds_and_is_traced_otherwise(cxr_png, tmp_path):
    outputs = ["Let me first trigger <CXR()>.", "Now <VISTA3D(organs)>.", "Both done."]
    cxr, seg = FindingsExpert(), LegendExpert()
    answer = Agent(ScriptedVLM(outputs), {"CXR": cxr, "VISTA3D": seg}, max_rounds=2, output_dir=tmp_path).ask(
        cxr_png, "What do you see?"
    )
    assert answer.text == "Both done."
    assert len(cxr.requests) == 1 and [r.args for r in seg.requests] == ["organs"]
    assert [step["name"] for step in answer.trace.of_type("expert")] == ["CXR", "VISTA3D"]
    # default max_rounds=1 (reference): the answer's call is not run, and the trace says so
    cxr, seg = FindingsExpert(), LegendExpert()
    answer = Agent(ScriptedVLM(outputs[:2]), {"CXR": cxr, "VISTA3D": seg}, output_dir=tmp_path).ask(cxr_png, "Q")
    assert answer.text == "Now <VISTA3D(organs)>." and seg.requests == []
    assert answer.trace.of_type("error")[0]["stage"] == "round_limit"


def test_loop_guard_stops_a_repeated_call(cxr_png, tmp_path):
    vlm = ScriptedVLM(["<CXR()>", "<CXR()>"])
    expert = FindingsExpert()
    answer = Agent(vlm, {"CXR": expert}, max_rounds=5, output_dir=tmp_path).ask(cxr_png, "Q")
    assert len(expert.requests) == 1 and len(vlm.prompts) == 2
    assert answer.trace.of_type("error")[0]["stage"] == "loop_guard"


def test_unknown_expert_becomes_a_message(cxr_png, tmp_path):
    vlm = ScriptedVLM(["Let me use <SAM(lungs)>."])
    answer = Agent(vlm, output_dir=tmp_path).ask(cxr_png, "Q")
    assert len(vlm.prompts) == 1  # reference: a call that cannot run ends the turn
    assert answer.turns[-1].role == "expert" and "no expert model named 'SAM'" in answer.turns[-1].text
    assert answer.notice.startswith("There is no expert model named 'SAM'")
    assert answer.trace.of_type("message")[0]["reason"] == "unknown_expert"


def test_with_rounds_left_the_vlm_may_correct_itself(ct_nifti, tmp_path):
    vlm = ScriptedVLM(["<VISTA3D(liver)>", "<VISTA3D(hepatic tumor)>", "yes"])
    expert = LegendExpert()
    answer = Agent(vlm, {"VISTA3D": expert}, max_rounds=2, output_dir=tmp_path).ask(ct_nifti, QUESTION)
    assert answer.text == "yes" and [r.args for r in expert.requests] == ["hepatic tumor"]
    assert _user_texts(vlm.prompts[1])[1] == (
        "'liver' is not accepted by the VISTA3D expert model; valid arguments are: 'everything', 'hepatic tumor', "
        "'pancreatic tumor', 'lung tumor', 'bone lesion', 'organs', 'cardiovascular', 'gastrointestinal', "
        "'skeleton', 'muscles', 'hepatoma'. Use this result to respond to this prompt:\n" + QUESTION
    )


def test_failing_expert_becomes_a_message_and_the_conversation_continues(ct_nifti, tmp_path):
    vlm = ScriptedVLM([TRIGGER, "Anything else?"])
    agent = Agent(vlm, {"VISTA3D": FailingExpert()}, output_dir=tmp_path)
    answer = agent.ask(ct_nifti, QUESTION)
    assert answer.turns[-1].text == "Sorry I met an error: CUDA out of memory (simulated)"
    assert answer.notice == answer.turns[-1].text and len(vlm.prompts) == 1
    (error,) = answer.trace.of_type("error")
    assert error["stage"] == "expert" and error["error_type"] == "RuntimeError" and "Traceback" in error["traceback"]
    follow_up = agent.ask(prompt="Anything else?")
    assert follow_up.text == "Anything else?"
    # the failed call left expert then user messages in a row: the VLM gets them as one user turn
    assert _user_texts(vlm.prompts[1])[-1] == "Sorry I met an error: CUDA out of memory (simulated)\nAnything else?"


@pytest.mark.parametrize("keyword", ["segmented", None])
def test_segmented_rule(ct_nifti, tmp_path, keyword):
    trigger = "I segmented the entire image using <VISTA3D(everything)>."
    vlm = ScriptedVLM([trigger, "Done."])
    answer = Agent(vlm, {"VISTA3D": LegendExpert()}, segmented_keyword=keyword, output_dir=tmp_path).ask(
        ct_nifti, "Segment the entire image."
    )
    if keyword:  # reference: no answer round; the visible answer is the trigger plus the overlay
        assert len(vlm.prompts) == 1 and answer.text == trigger
        assert answer.turns[-1].role == "expert" and len(answer.turns[-1].images) == 1
        assert answer.notice.startswith("The results are <image>.")
        assert answer.trace.of_type("expert")[0]["answer_round"] is False
    else:
        assert len(vlm.prompts) == 2 and answer.text == "Done."


def test_cxr_answers_even_when_the_trigger_says_segmented(cxr_png, tmp_path):
    vlm = ScriptedVLM(["I segmented nothing, calling <CXR()>.", "no"])
    answer = Agent(vlm, {"CXR": FindingsExpert()}, output_dir=tmp_path).ask(cxr_png, "Effusion?")
    assert answer.text == "no" and len(vlm.prompts) == 2


def test_vista2d_card_without_runner_is_not_available(cxr_png, tmp_path):
    vlm = ScriptedVLM(["Let me trigger <VISTA2D()>."])
    answer = Agent(vlm, output_dir=tmp_path).ask(cxr_png, "Segment the cells.")
    assert answer.turns[-1].text == "The expert model VISTA2D is not available: no runner is installed for it. "
    assert answer.trace.of_type("expert")[0]["status"] == "not_available"


def test_expert_not_enabled_is_not_available(cxr_png, tmp_path):
    vlm = ScriptedVLM(["<CXR()>"])
    answer = Agent(vlm, {"CXR": FindingsExpert()}, enabled_experts=["vista3d"], output_dir=tmp_path).ask(cxr_png, "Q")
    assert "CXR is not available: it is not enabled here (enabled: VISTA3D)" in answer.turns[-1].text


def test_several_tags_become_a_message(cxr_png, tmp_path):
    vlm = ScriptedVLM(["<image> Let me trigger <CXR()>."])
    answer = Agent(vlm, {"CXR": FindingsExpert()}, output_dir=tmp_path).ask(cxr_png, "Q")
    assert answer.turns[-1].text.startswith("Found 2 tags (<image>, <CXR()>)")
    relaxed = Agent(ScriptedVLM(["<image> <CXR()>", "ok"]), {"CXR": FindingsExpert()}, single_tag=False)
    assert relaxed.ask(cxr_png, "Q").text == "ok"


def test_bad_expert_result_is_an_error_message(ct_nifti, tmp_path):
    class NoImage(LegendExpert):
        def run(self, request):
            result = super().run(request)
            result.images = []
            return result

    answer = Agent(ScriptedVLM([TRIGGER]), {"VISTA3D": NoImage()}, output_dir=tmp_path).ask(ct_nifti, QUESTION)
    assert answer.turns[-1].text == "Sorry I met an error: Expert VISTA3D returned 1 <image> token(s) for 0 image(s)."


def test_follow_up_keeps_history_and_reuses_the_last_image(ct_nifti, tmp_path):
    vlm = ScriptedVLM(["It is a CT scan.", "Let me trigger <VISTA3D(organs)>. ", "The liver is visible."])
    expert = LegendExpert()
    agent = Agent(vlm, {"VISTA3D": expert}, output_dir=tmp_path)
    agent.ask(ct_nifti, "What is this?")
    answer = agent.ask(prompt="Segment the organs.")
    assert answer.text == "The liver is visible."
    assert expert.requests[0].image == ct_nifti and expert.requests[0].prompt == "Segment the organs."
    users = _user_texts(vlm.prompts[1])
    assert users[0].startswith(CARDS) and users[1] == "Segment the organs."  # text-only follow-up: no cards
    assert len(vlm.images[2]) == 2  # the first slice and the overlay: the whole history is re-sent
    assert answer.turns[0].role == "user" and len(agent.history) == 7
    agent.reset()
    assert agent.history == [] and agent.current_input is None
    agent.output_dir = tmp_path / "elsewhere"
    assert agent.output_dir.is_dir()


def test_expert_call_without_any_image(tmp_path):
    answer = Agent(ScriptedVLM(["<CXR()>"]), {"CXR": FindingsExpert()}, output_dir=tmp_path).ask(prompt="Hi")
    assert answer.turns[-1].text.startswith("Sorry I met an error: There is no image in this conversation")


def test_mri_sequences_turn(mri_files, tmp_path):
    vlm = ScriptedVLM(["This looks like an MRI image sequence. Let me first trigger <BRATS()>.", "high grade"])
    expert = LegendExpert("BRATS", legend=[])
    answer = Agent(vlm, {"BRATS": expert}, output_dir=tmp_path).ask(mri_files, "<image>What glioma grade?")
    assert _user_texts(vlm.prompts[0]) == [CARDS + MRI_SEQUENCES_TEXT + "What glioma grade?"]
    assert len(vlm.images[0]) == 4 and answer.text == "high grade"
    assert expert.requests[0].image == mri_files and expert.requests[0].volume.channel_names[0] == "t1ce"
    assert answer.trace.of_type("input")[0]["modality"] == "MRI"


@pytest.mark.parametrize(
    ("name", "prompt", "override", "expected", "origin"),
    [
        ("cxr_1.png", "Q", None, "This is a CXR image.\n", "file_name"),
        ("pic.png", "Is this chest X-ray normal?", None, "This is a CXR image.\n", "prompt"),
        ("pic.png", "Describe it.", None, "", "unknown"),
        ("cxr_1.png", "Q", "Unknown", "", "override"),
        ("pic.png", "Q", "ct", "This is a CT image.\n", "override"),
    ],
)
def test_modality_sentence(tmp_path, name, prompt, override, expected, origin):
    from PIL import Image

    path = tmp_path / name
    Image.new("L", (16, 16), 128).save(path)
    vlm = ScriptedVLM(["fine"])
    answer = Agent(vlm, output_dir=tmp_path).ask(str(path), prompt, modality=override)
    assert _user_texts(vlm.prompts[0]) == [CARDS + "<image>" + expected + prompt]
    assert answer.trace.of_type("input")[0]["modality_source"] == origin


def test_no_cards_and_user_placed_image_token(cxr_png, tmp_path):
    vlm = ScriptedVLM(["fine"])
    Agent(vlm, use_cards=False, output_dir=tmp_path).ask(cxr_png, "Look: <image> what is it?")
    assert _user_texts(vlm.prompts[0]) == ["This is a CXR image.\nLook: <image> what is it?"]


def test_trace_is_json_and_records_tokens_and_time_split(ct_nifti, tmp_path):
    vlm = DetailedVLM([TRIGGER, "yes"])
    agent = Agent(vlm, {"VISTA3D": LegendExpert()}, output_dir=tmp_path, generation={"max_new_tokens": 7})
    answer = agent.ask(ct_nifti, QUESTION, temperature=0.0)
    assert vlm.gen_kwargs == [{"max_new_tokens": 7, "temperature": 0.0}] * 2
    data = json.loads(json.dumps(answer.trace.to_dict()))
    generations = [step for step in data["steps"] if step["type"] == "generation"]
    assert [step["prompt_tokens"] for step in generations] == [101, 102]
    assert generations[0]["parse"]["call"] == {
        "name": "VISTA3D",
        "args": "hepatic tumor",
        "raw": "<VISTA3D(hepatic tumor)>",
    }
    (expert,) = [step for step in data["steps"] if step["type"] == "expert"]
    assert expert["inputs"] == {"image": ct_nifti, "args": "hepatic tumor", "slice_index": 5}
    assert expert["seconds"]["inference"] == 0.001 and expert["data"] == {"args": "hepatic tumor"}
    split = data["seconds"]
    assert set(split) == {"generation", "expert", "rendering", "input_loading", "total"}
    assert split["rendering"] >= 0.002 and split["total"] >= split["generation"]
    written = answer.trace.write(tmp_path / "trace.json")
    assert json.loads(written.read_text())["steps"][0]["type"] == "input"


def test_image_token_written_by_the_vlm_does_not_break_later_prompts(cxr_png, tmp_path):
    vlm = ScriptedVLM(["Here: <image>", "fine"])
    agent = Agent(vlm, output_dir=tmp_path)
    agent.ask(cxr_png, "Q")
    assert agent.ask(prompt="And?").text == "fine"
    assert agent.history[1].text == "Here: <image>"  # the history keeps the raw output


def test_image_tokens_quoted_in_expert_messages_do_not_break_later_prompts(cxr_png, ct_nifti, tmp_path):
    """A message that quotes a stray <image> (several tags; a bad expert result) carries no image."""
    vlm = ScriptedVLM(["See <image> and <CXR()>.", "fine"])
    agent = Agent(vlm, {"CXR": FindingsExpert()}, output_dir=tmp_path)
    agent.ask(cxr_png, "Q")
    assert "<image>" in agent.history[-1].text  # the history keeps the message as written
    assert agent.ask(prompt="And effusion?").text == "fine"
    assert vlm.prompts[-1].count("<image>") == 1  # only the original picture's token is left

    class NoImage(LegendExpert):
        def run(self, request):
            result = super().run(request)
            result.images = []
            return result

    vlm = ScriptedVLM([TRIGGER, "answered after the error", "fine"])
    agent = Agent(vlm, {"VISTA3D": NoImage()}, output_dir=tmp_path, max_rounds=2)
    assert agent.ask(ct_nifti, QUESTION).text == "answered after the error"  # same turn, error message in view
    assert agent.ask(prompt="And now?").text == "fine"


def test_image_token_in_a_text_only_follow_up_is_refused(cxr_png, tmp_path):
    from vila_m3_core.errors import VilaM3Error

    agent = Agent(ScriptedVLM(["fine"]), output_dir=tmp_path)
    with pytest.raises(VilaM3Error, match="no image is attached"):
        agent.ask(prompt="<image> what?")
    with pytest.raises(VilaM3Error, match="pass the image again"):
        agent.ask(prompt="and slice 3?", slice_index=3)


def test_instruction_repeats_the_question_without_image_tokens(cxr_png, tmp_path):
    vlm = ScriptedVLM(["<CXR()>", "no"])
    Agent(vlm, {"CXR": FindingsExpert()}, output_dir=tmp_path).ask(cxr_png, "<image>\nEffusion?")
    assert _user_texts(vlm.prompts[1])[1].endswith(".Use this result to respond to this prompt:\nEffusion?")


def test_vlm_failure_leaves_the_conversation_unchanged(cxr_png, tmp_path):
    from vila_m3_core.errors import VilaM3Error

    class Broken(ScriptedVLM):
        def generate(self, turns, **gen):
            raise VilaM3Error("prompt longer than the context")

    agent = Agent(Broken([]), output_dir=tmp_path)
    with pytest.raises(VilaM3Error, match="context"):
        agent.ask(cxr_png, "Q")
    assert agent.history == [] and agent.last_trace.of_type("error")[0]["stage"] == "generation"


def test_pil_input_and_bad_inputs(tmp_path):
    from PIL import Image

    from vila_m3_core.errors import VilaM3Error

    vlm = ScriptedVLM(["<CXR()>", "ok"])
    expert = FindingsExpert()
    Agent(vlm, {"CXR": expert}, output_dir=tmp_path).ask(Image.new("RGB", (20, 10)), "Is this chest x-ray normal?")
    assert expert.requests[0].image.endswith(".png") and "This is a CXR image.\n" in vlm.prompts[0]
    agent = Agent(ScriptedVLM([]), output_dir=tmp_path)
    with pytest.raises(VilaM3Error, match="four MRI sequences"):
        agent.ask(["a.nii.gz", "b.nii.gz"], "Q")
    with pytest.raises(VilaM3Error, match="Unknown modality"):
        agent.ask(str(tmp_path / "x.png"), "Q", modality="PET")
    with pytest.raises(VilaM3Error, match="max_rounds"):
        Agent(ScriptedVLM([]), max_rounds=-1)


@pytest.mark.parametrize(("name", "modality"), [("CT_small.dcm", "CT"), ("MR_small.dcm", "MRI")])
def test_dicom_modality_from_the_header(tmp_path, name, modality):
    from pydicom.data import get_testdata_file

    vlm = ScriptedVLM(["fine"])
    answer = Agent(vlm, output_dir=tmp_path).ask(get_testdata_file(name), "Describe it.")
    assert f"<image>This is a {modality} image.\nDescribe it." in vlm.prompts[0]
    step = answer.trace.of_type("input")[0]
    assert step["modality_source"] == "file" and step["header"]["Modality"] == name[:2]


def test_cli_argument_helpers(tmp_path):
    from vila_m3_core.agent_cli import expert_settings, image_argument, slice_argument, split_names
    from vila_m3_core.errors import VilaM3Error

    assert image_argument("a.nii.gz,b.nii.gz, c.nii.gz,d.nii.gz") == ["a.nii.gz", "b.nii.gz", "c.nii.gz", "d.nii.gz"]
    assert image_argument("[a.nii, b.nii]") == ["a.nii", "b.nii"] and image_argument(("x.png",)) == "x.png"
    odd = tmp_path / "scan,1.png"
    odd.write_bytes(b"")
    assert image_argument(str(odd)) == str(odd)  # an existing path with a comma stays one path
    assert split_names("cxr, vista3d") == ["CXR", "VISTA3D"] and split_names(("brats",)) == ["BRATS"]
    assert split_names("all") is None and split_names(None) is None
    assert slice_argument("auto") == "auto" and slice_argument("12") == 12 and slice_argument(3) == 3
    with pytest.raises(VilaM3Error):
        slice_argument(True)
    config = expert_settings("cpu", '{"vista3d": {"bundle_dir": "/b"}, "ECHO": {"x": 1}}')
    assert config["VISTA3D"] == {"device": "cpu", "bundle_dir": "/b"} and config["ECHO"] == {"x": 1}
    with pytest.raises(VilaM3Error, match="must be JSON"):
        expert_settings("cpu", "{bad")
