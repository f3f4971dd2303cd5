"""What the expert-conversation generators share: first-turn assembly, trigger sentences, the train/test split.

Wordings the VLM reads at inference come from ``vila_m3_core`` (model cards, modality sentence, MRI sequence text,
expert feedback, instruction) so training data and inference cannot drift; the trigger sentences the VLM *emits*
(gpt targets, never produced by code at inference) live in ``phrases/expert_triggers.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_prepare.phrases import load_phrases
from data_prepare.records import Tally, logger, rng_for, write_records
from vila_m3_core.agent_inputs import MODALITY_TEXT
from vila_m3_core.conversation import IMAGE_TOKEN
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.cards import render_model_cards


def trigger(name: str, **fields: str) -> str:
    """The trigger sentence ``name`` (``cxr``, ``vista3d``, ``brats``, ``brats_segment``) with ``fields`` filled."""
    return load_phrases("expert_triggers")[name].format(**fields)


def first_turn(modality: str, question: str, image_lead: str) -> str:
    """Model cards + one ``<image>`` + the modality sentence + the question, as the reference training data.

    Args:
        modality: ``"CXR"`` or ``"CT"``.
        question: the user's question (no placeholder).
        image_lead: the placement of the placeholder in the reference data: ``"<image> "`` for CXR
            (``"<image> This is a CXR image.\\n"``) and ``" <image>"`` for VISTA3D (``" <image>This is a CT image.\\n"``).
    """
    if image_lead.strip() != IMAGE_TOKEN:
        raise ValueError(f"image_lead must hold exactly {IMAGE_TOKEN!r}")
    return render_model_cards() + image_lead + MODALITY_TEXT.format(modality=modality) + question


def test_output_path(output: str | Path, test_output: str | None) -> Path:
    """The test file: ``test_output`` or ``<output stem>_test<suffix>`` next to ``output``."""
    if test_output:
        return Path(test_output)
    output = Path(output)
    return output.with_name(f"{output.stem}_test{output.suffix}")


def write_train_test(
    records: list[dict[str, Any]],
    output: str | Path,
    tally: Tally,
    seed: int,
    test_frac: float = 0.0,
    test_output: str | None = None,
    image_root: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``records``, sending a seeded ``test_frac`` share of them to a test file.

    Each record's side is drawn from ``(seed, id)`` alone, so it does not change when other records come or go.
    Records sent to the test file are counted in ``tally`` under "sent to the test file". The reference sent half
    of everything to test by default; here the default is 0 (no test file).

    Returns:
        ``{"train": summary, "test": summary or None}``.
    """
    if not 0.0 <= float(test_frac) < 1.0:
        raise VilaM3Error(f"--test_frac must be in [0, 1), not {test_frac}")
    train, test = [], []
    for record in records:
        side = test if test_frac > 0 and rng_for(seed, "test_frac", record["id"]).random() < test_frac else train
        side.append(record)
    for record in test:
        tally.drop("sent to the test file (test_frac)", record["id"])
    result: dict[str, Any] = {"train": write_records(train, output, tally, image_root), "test": None}
    if test_frac > 0:
        test_tally = Tally(f"{tally.dataset}/test")
        test_tally.read = len(test)
        if test:
            result["test"] = write_records(test, test_output_path(output, test_output), test_tally, image_root)
        else:
            logger.warning("%s: test_frac %s drew no record; no test file written", tally.dataset, test_frac)
    return result
