"""Every expert feedback wording in one place: the texts the VLM reads after an expert ran.

The strings are protocol text: the released VILA-M3 checkpoints were trained on (and demoed with) exactly these
bytes, so they are reproduced byte for byte from the reference (``agent_protocol.md`` §1.4, §3.1-3.3, §6).
Data preparation imports these functions to build training conversations, and the experts use them at inference,
so the two can never drift apart. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

#: The 18 TorchXRayVision classes in ``xrv.datasets.default_pathologies`` order (the training-data line order).
CXR_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
)

#: Instruction that follows every expert result at inference (demo wording, all three experts).
INSTRUCTION_PREFIX = "Use this result to respond to this prompt:\n"
#: The CXR instruction of the training data (``expert_utils.add_expert_conversation``); note the leading space.
CXR_TRAINING_INSTRUCTION_PREFIX = (
    " Analyze the image and take these predictions into account when responding to this prompt:\n"
)
#: The CXR instruction of the report-generation eval (``inference_expert.py``): "prompt." instead of "prompt:".
CXR_REPORT_EVAL_INSTRUCTION_PREFIX = (
    " Analyze the image and take these predictions into account when responding to this prompt.\n"
)
#: The substring of the VLM's trigger sentence that, in the reference, means "segmentation was the answer".
SEGMENTED_KEYWORD = "segmented"
#: Expert tags whose result is followed by the instruction even when the trigger says "segmented".
ALWAYS_ANSWER_EXPERTS = frozenset({"CXR"})

_RESULTS_IMAGE = "The results are <image>. The colors in this image describe"


def instruction(prompt: str) -> str:
    """The follow-up instruction: ``"Use this result to respond to this prompt:\\n" + prompt``."""
    return INSTRUCTION_PREFIX + prompt


def skips_second_round(trigger: str, expert: str = "", keyword: str | None = SEGMENTED_KEYWORD) -> bool:
    """The reference's "segmented" rule: no answer round when the trigger sentence contains ``keyword``.

    Args:
        trigger: the VLM output that called the expert, e.g. ``"I segmented the liver using <VISTA3D(organs)>."``.
        expert: the expert tag name; CXR always answers (``ALWAYS_ANSWER_EXPERTS``), as in the reference.
        keyword: the substring to look for (case-sensitive, as the reference); ``None`` switches the rule off.
    """
    if keyword is None or expert.upper() in ALWAYS_ANSWER_EXPERTS:
        return False
    return keyword in trigger


def error_feedback(error: BaseException | str) -> str:
    """The reference's text for a failed expert: ``"Sorry I met an error: {error}"`` (no image, no instruction)."""
    return f"Sorry I met an error: {error}"


# ----------------------------------------------------------------------------------------------------- CXR
def cxr_finding_name(class_name: str) -> str:
    """The finding as written in the feedback: lower case, ``_`` replaced by a space (``"pleural thickening"``)."""
    return class_name.lower().replace("_", " ")


def cxr_findings(scores: Mapping[str, float], threshold: float = 0.5, inclusive: bool = False) -> dict[str, bool]:
    """Turn ensemble scores into yes/no findings, keeping the order of ``scores``.

    Args:
        scores: class name -> ensemble probability in [0, 1].
        threshold: decision threshold; the reference training data and evals used 0.5.
        inclusive: ``False`` = ``score > threshold`` (training/eval), ``True`` = ``score >= threshold`` (the demo).
            The two differ exactly at 0.5, which matters because classes a model was not trained on score 0.5.
    """
    if inclusive:
        return {name: float(score) >= threshold for name, score in scores.items()}
    return {name: float(score) > threshold for name, score in scores.items()}


def cxr_prediction_lines(findings: Mapping[str, bool], order: str = "sorted") -> list[str]:
    """One ``"<finding>: yes|no"`` line per class.

    Args:
        findings: class name (xrv spelling, e.g. ``"Pleural_Thickening"``) -> present.
        order: ``"sorted"`` = alphabetical by the xrv class name (the demo, i.e. the inference protocol) or
            ``"given"`` = the mapping's order (training data, which used ``default_pathologies`` order).
    """
    if order not in ("sorted", "given"):
        raise ValueError(f"order must be 'sorted' or 'given', not {order!r}")
    keys: Iterable[str] = sorted(findings) if order == "sorted" else list(findings)
    return [f"{cxr_finding_name(key)}: {'yes' if findings[key] else 'no'}" for key in keys]


def cxr_feedback(findings: Mapping[str, bool], order: str = "sorted") -> str:
    """The CXR expert text: ``"The resulting predictions are:\\n<line>\\n...<line>\\n."`` (no image).

    The training data's ``"...:\\n" + "".join(line + "\\n") + "."`` is the same string, so this also serves data
    preparation (with ``order="given"``) followed by :data:`CXR_TRAINING_INSTRUCTION_PREFIX` + question.
    """
    return "The resulting predictions are:\n" + "\n".join(cxr_prediction_lines(findings, order)) + "\n."


# ------------------------------------------------------------------------------------------------- VISTA3D
def legend_text(legend: Sequence[tuple[str, str]]) -> str:
    """``"red: liver, blue: hepatic tumor"`` from ``[(colour, label name), ...]`` (the training "label_colors")."""
    return ", ".join(f"{colour}: {name}" for colour, name in legend)


def vista3d_feedback(legend: Sequence[tuple[str, str]]) -> str:
    """The VISTA3D expert text, one ``<image>`` (the overlay).

    ``"The results are <image>. The colors in this image describe red: liver, blue: hepatic tumor. "``
    (trailing space included). With an empty legend (nothing segmented in the shown slice) the reference produced
    ``"... describe . "``; we say so in words instead (documented in docs/experts.md).
    """
    if not legend:
        return f"{_RESULTS_IMAGE} no segmented structure in this slice. "
    return f"{_RESULTS_IMAGE} {legend_text(legend)}. "


# --------------------------------------------------------------------------------------------------- BraTS
def brats_feedback(present_labels: Iterable[int], colours: Mapping[int, str], training_order: bool = False) -> str:
    """The BraTS expert text, one ``<image>`` (the overlay on the T1ce slice).

    ``"The results are <image>. The colors in this image describe\\n"`` followed by, each only when it applies:
    ``"{c1} and {c4}: tumor core, "`` (labels 1 and 4 present), ``"only {c4}: enhancing tumor, "`` (label 4),
    ``"all colors: whole tumor\\n"`` (any of 1, 2, 4); with none of them, ``"no tumor in this slice\\n"``
    (the reference left the sentence empty). Label 2 (oedema) never gets its own phrase (reference).

    Args:
        present_labels: BraTS label values present in the shown slice (1 = necrotic core, 2 = oedema, 4 = enhancing).
        colours: label value -> colour name of the overlay.
        training_order: ``True`` writes the tumour-core pair as ``"{c4} and {c1}"`` ("yellow and red"), as in the
            training data; ``False`` (default) is the demo's ``"{c1} and {c4}"``.
    """
    present = set(int(label) for label in present_labels)
    text = f"{_RESULTS_IMAGE}\n"
    if 1 in present and 4 in present:
        first, second = (colours[4], colours[1]) if training_order else (colours[1], colours[4])
        text += f"{first} and {second}: tumor core, "
    if 4 in present:
        text += f"only {colours[4]}: enhancing tumor, "
    if present & {1, 2, 4}:
        text += "all colors: whole tumor\n"
    else:
        # the reference stopped after "describe\n"; say it in words (docs/experts.md)
        text += "no tumor in this slice\n"
    return text
