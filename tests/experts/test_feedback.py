"""Feedback wordings byte-exact to the reference protocol (agent_protocol.md §1.4, §3, §6)."""

from __future__ import annotations

from vila_m3_core.experts import feedback


def test_instruction_and_recorded_transcript_join():
    text = feedback.vista3d_feedback([("red", "liver"), ("blue", "hepatic tumor")])
    assert text == "The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor. "
    joined = text + feedback.instruction("Is there a hepatic tumor in the image")
    # the squashed second-round user text recorded in the reference notebook
    assert joined == (
        "The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor. "
        "Use this result to respond to this prompt:\nIs there a hepatic tumor in the image"
    )


def test_cxr_feedback_demo_order_and_join():
    findings = {name: name in ("Effusion", "Pleural_Thickening") for name in feedback.CXR_CLASSES}
    text = feedback.cxr_feedback(findings)
    lines = text.split("\n")
    assert lines[0] == "The resulting predictions are:"
    assert lines[-1] == "."
    assert [line.split(":")[0] for line in lines[1:-1]] == [
        "atelectasis", "cardiomegaly", "consolidation", "edema", "effusion", "emphysema",
        "enlarged cardiomediastinum", "fibrosis", "fracture", "hernia", "infiltration", "lung lesion",
        "lung opacity", "mass", "nodule", "pleural thickening", "pneumonia", "pneumothorax",
    ]  # fmt: skip
    assert "effusion: yes\n" in text and "pleural thickening: yes\n" in text and "edema: no\n" in text
    # no space after the period, as in the reference's squashed text
    assert (text + feedback.instruction("q")).endswith(
        "pneumothorax: no\n.Use this result to respond to this prompt:\nq"
    )


def test_cxr_feedback_training_order_matches_training_turn():
    findings = {name: False for name in feedback.CXR_CLASSES}
    findings["Atelectasis"] = True
    lines = "".join(f"{feedback.cxr_finding_name(n)}: {'yes' if v else 'no'}\n" for n, v in findings.items())
    training_turn = (
        f"The resulting predictions are:\n{lines}. Analyze the image and take these predictions into account "
        "when responding to this prompt:\nWhat is shown?"
    )
    built = feedback.cxr_feedback(findings, order="given") + feedback.CXR_TRAINING_INSTRUCTION_PREFIX + "What is shown?"
    assert built == training_turn
    assert built.startswith("The resulting predictions are:\natelectasis: yes\nconsolidation: no\n")


def test_cxr_threshold_strict_and_inclusive():
    scores = {"Edema": 0.5, "Mass": 0.51, "Hernia": 0.2}
    assert feedback.cxr_findings(scores) == {"Edema": False, "Mass": True, "Hernia": False}
    assert feedback.cxr_findings(scores, inclusive=True) == {"Edema": True, "Mass": True, "Hernia": False}
    assert feedback.cxr_findings(scores, threshold=0.1) == {"Edema": True, "Mass": True, "Hernia": True}


def test_brats_feedback_all_fragments_demo_and_training_order():
    colours = {1: "red", 2: "blue", 4: "yellow"}
    assert feedback.brats_feedback([1, 2, 4], colours) == (
        "The results are <image>. The colors in this image describe\n"
        "red and yellow: tumor core, only yellow: enhancing tumor, all colors: whole tumor\n"
    )
    training = feedback.brats_feedback([4, 1, 2], colours, training_order=True) + feedback.instruction("q.")
    assert training == (
        "The results are <image>. The colors in this image describe\nyellow and red: tumor core, only yellow: "
        "enhancing tumor, all colors: whole tumor\nUse this result to respond to this prompt:\nq."
    )


def test_brats_feedback_partial_and_empty():
    colours = {1: "red", 2: "blue", 4: "yellow"}
    assert feedback.brats_feedback([2], colours).endswith("describe\nall colors: whole tumor\n")
    assert feedback.brats_feedback([4], colours).endswith(
        "describe\nonly yellow: enhancing tumor, all colors: whole tumor\n"
    )
    assert feedback.brats_feedback([1], colours).endswith("describe\nall colors: whole tumor\n")
    assert feedback.brats_feedback([], colours).endswith("describe\nno tumor in this slice\n")


def test_segmented_rule():
    assert feedback.skips_second_round("I segmented the liver using <VISTA3D(organs)>.", "VISTA3D")
    assert not feedback.skips_second_round("Let me trigger <VISTA3D(hepatic tumor)>. ", "VISTA3D")
    assert not feedback.skips_second_round("I segmented <CXR()>", "CXR")  # CXR always answers
    assert not feedback.skips_second_round("I segmented any brain tumors using <BRATS()>.", "BRATS", keyword=None)
    assert feedback.skips_second_round("All outlined", "BRATS", keyword="outlined")


def test_error_and_empty_vista3d_texts():
    assert feedback.error_feedback(ValueError("boom")) == "Sorry I met an error: boom"
    assert feedback.vista3d_feedback([]) == (
        "The results are <image>. The colors in this image describe no segmented structure in this slice. "
    )
    assert feedback.legend_text([("red", "liver")]) == "red: liver"
