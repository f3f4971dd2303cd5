"""CXR expert conversations from any record file plus per-image CXR ensemble predictions.

Each single-image record becomes the reference's 4-turn conversation (``expert_utils.add_expert_conversation``):

1. human: model cards + ``"<image> This is a CXR image.\\n"`` + the first question (its placeholder removed);
2. gpt: ``"This looks like an chest x-ray. Let me first trigger <CXR()>."``;
3. human: the CXR feedback (``"The resulting predictions are:\\n<finding>: yes|no\\n...\\n."``, 18 classes in
   TorchXRayVision order, score > 0.5) + ``" Analyze the image and take these predictions into account when
   responding to this prompt:\\n"`` + the first question;
4. gpt: the original answer, then any later turns of the original conversation.
"""

from __future__ import annotations

from typing import Any

from data_prepare.cxr_predictions import CXRPredictions, PredictionError
from data_prepare.expert_common import first_turn, trigger, write_train_test
from data_prepare.records import Tally, progress, strip_placeholders
from data_prepare.validate import read_record_file
from vila_m3_core.experts.feedback import CXR_TRAINING_INSTRUCTION_PREFIX, cxr_feedback


def expert_cxr_conversation(conversations: list[dict[str, str]], findings: dict[str, bool]) -> list[dict[str, str]]:
    """The 4-turn CXR expert conversation built around an existing single-image conversation."""
    question = strip_placeholders(conversations[0]["value"])
    return [
        {"from": "human", "value": first_turn("CXR", question, "<image> ")},
        {"from": "gpt", "value": trigger("cxr")},
        {"from": "human", "value": cxr_feedback(findings, order="given") + CXR_TRAINING_INSTRUCTION_PREFIX + question},
        *[dict(turn) for turn in conversations[1:]],
    ]


def convert_expert_cxr(
    input: str,
    output: str,
    predictions: str,
    image_root: str | None = None,
    seed: int = 0,
    test_frac: float = 0.0,
    test_output: str | None = None,
) -> dict[str, Any]:
    """Add the CXR expert conversation to every single-image record of ``input``.

    Args:
        input: any record file (``.json``/``.jsonl``), e.g. MIMIC-VQA, MIMIC-CXR report or classification records.
        output: the expert record file.
        predictions: the ``predict`` verb's JSON (``{image: {class: score}}``) or a folder of per-image JSONs.
        image_root: checks that images exist when given.
        seed: seeds the train/test draw.
        test_frac: share of records written to the test file (default 0: none).
        test_output: test file path (default ``<output stem>_test<suffix>``).
    """
    records, bad_lines = read_record_file(input)
    source = CXRPredictions(predictions)
    tally = Tally("expert_cxr")
    for message in bad_lines:
        tally.read += 1
        tally.drop("malformed JSON line", message)
    out: list[dict[str, Any]] = []
    for record in progress(records, "expert_cxr"):
        tally.read += 1
        turns = record.get("conversations") if isinstance(record, dict) else None
        if not isinstance(turns, list) or len(turns) < 2 or not isinstance(record.get("image"), str):
            tally.drop("not a single-image record with a conversation", record)
            continue
        if not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns):
            tally.drop("malformed conversation", record.get("id"))
            continue
        try:
            findings = source.findings(record["image"])
        except PredictionError as err:
            tally.drop(str(err), record["image"])
            continue
        converted = {key: value for key, value in record.items() if key != "conversations"}
        converted["conversations"] = expert_cxr_conversation(turns, findings)
        converted["expert"] = "CXR"
        out.append(converted)
    return write_train_test(out, output, tally, seed, test_frac, test_output, image_root)
