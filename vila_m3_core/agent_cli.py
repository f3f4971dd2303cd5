"""``vila-m3 chat``: one question about an image, answered by VILA-M3 with its expert models.

Prints the answer; writes the slices the VLM saw, the expert overlays and segmentations, ``answer.json`` and
``trace.json`` to ``--output_dir``.
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

#: The experts shipped with vila-m3 (each takes ``device=``).
BUILTIN_EXPERTS = ("CXR", "VISTA3D", "BRATS")


def split_names(value: str | Sequence[str] | None) -> list[str] | None:
    """``"cxr,vista3d"`` or a list from fire -> ``["CXR", "VISTA3D"]``; ``None``/``"all"`` -> ``None`` (all)."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else [str(part) for part in value]
    names = [part.strip().upper() for part in parts if part.strip()]
    return None if names == ["ALL"] else names


def image_argument(value: str | Sequence[str] | None) -> str | list[str] | None:
    """``--image file``, ``--image dicom_dir`` or four MRI files (``a,b,c,d`` or a list) -> what Agent.ask takes."""
    if value is None:
        return None
    if isinstance(value, str):
        if Path(value).exists() or "," not in value:
            return value
        value = value.strip().removeprefix("[").removesuffix("]").split(",")  # "a,b" or fire's "[a, b]"
    paths = [str(part).strip() for part in value if str(part).strip()]
    return paths[0] if len(paths) == 1 else paths


def slice_argument(value: Any) -> int | str:
    """``--slice auto|middle|N`` -> ``"auto"``, ``"middle"`` or an int."""
    if isinstance(value, bool):
        raise VilaM3Error(f"--slice takes auto, middle or a slice number, not {value!r}.")
    if isinstance(value, int):
        return value
    word = str(value).strip().lower()
    if word in ("auto", "middle"):
        return word
    if word.isdigit():
        return int(word)
    raise VilaM3Error(f"--slice takes auto, middle or a slice number, not {value!r}.")


def expert_settings(device: str, expert_config: Mapping[str, Any] | str | None) -> dict[str, dict[str, Any]]:
    """Per-expert constructor arguments: ``device`` for the built-in experts, then ``--expert_config``."""
    if isinstance(expert_config, str):
        try:
            expert_config = jsonlib.loads(expert_config)
        except jsonlib.JSONDecodeError as err:
            raise VilaM3Error(f"--expert_config must be JSON like '{{\"VISTA3D\": {{...}}}}': {err}") from None
    if expert_config is not None and not isinstance(expert_config, Mapping):
        raise VilaM3Error("--expert_config must map expert names to constructor arguments.")
    config: dict[str, dict[str, Any]] = {name: {"device": device} for name in BUILTIN_EXPERTS}
    for name, values in (expert_config or {}).items():
        if not isinstance(values, Mapping):
            raise VilaM3Error(f"--expert_config[{name!r}] must be a mapping of constructor arguments.")
        config.setdefault(str(name).upper(), {}).update(values)
    return config


def run_chat(
    image: str | Sequence[str] | None = None,
    prompt: str | None = None,
    model_path: str | None = None,
    revision: str | None = None,
    modality: str | None = None,
    slice: Any = "middle",  # noqa: A002 - the CLI flag is --slice
    max_rounds: int = 1,
    experts: str | Sequence[str] | None = None,
    output_dir: str = "vila_m3_chat",
    conv_mode: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    temperature: float = 0.0,
    max_new_tokens: int = 1024,
    segmented_rule: bool = True,
    use_cards: bool = True,
    cards_dir: str | Sequence[str] | None = None,
    expert_config: Mapping[str, Any] | str | None = None,
    json: bool = False,
    vlm: Any = None,
) -> dict[str, Any]:
    """Ask VILA-M3 about an image; it may call an expert (CXR, VISTA3D, BRATS) and answers with its result.

    Args:
        image: a 2D picture, a NIfTI/NRRD file, a DICOM file or series folder, or four MRI files
            ``t1ce,t1,t2,flair`` (in that order).
        prompt: the question.
        model_path: checkpoint folder or Hub repo id (default: the model package's default, Llama3-VILA-M3-8B).
        revision: Hub revision to pin.
        modality: CT, MRI, CXR or Unknown; default: from the file (headers, name), then the prompt.
        slice: axial slice of a 3D image: ``middle`` (default, reference), a number, or ``auto`` (the slice with
            the largest area of the requested structure, for the expert's overlay).
        max_rounds: expert calls per question (1 = reference; 2+ lets the model chain experts).
        experts: experts allowed to run, e.g. ``cxr,vista3d`` (default all); the others answer "not available".
        output_dir: where the overlays, segmentations, ``answer.json`` and ``trace.json`` go.
        conv_mode: conversation template (default per checkpoint).
        device, dtype: for the VLM (``auto``: CUDA if present, bf16 there); experts use ``device`` too.
        temperature, max_new_tokens: decoding.
        segmented_rule: the reference's "segmented" rule (no answer after "I segmented ... <VISTA3D(...)>").
        use_cards: put the model cards in the prompt (the released checkpoints expect them).
        cards_dir: extra model-card folder(s) for user experts.
        expert_config: JSON/dict of constructor arguments by expert, e.g. ``{"VISTA3D": {"bundle_dir": "..."}}``.
        json: print the answer record as JSON instead of the text.
        vlm: an already loaded VLM (for programmatic use); ``model_path`` is then ignored.

    Returns:
        The answer record (also written to ``answer.json``): answer, notice, files, seconds.
    """
    from vila_m3_core.agent import Agent
    from vila_m3_core.experts.cards import DEFAULT_CARD_DIR, load_cards

    if not prompt:
        raise VilaM3Error("Give a question with --prompt.")
    source = image_argument(image)
    if source is None:
        raise VilaM3Error("Give an image with --image (a file, a DICOM folder, or four MRI files t1ce,t1,t2,flair).")
    slice_index = slice_argument(slice)
    enabled = split_names(experts)
    extra_cards = [cards_dir] if isinstance(cards_dir, str) else list(cards_dir or [])
    cards = load_cards([DEFAULT_CARD_DIR, *extra_cards]) if extra_cards else load_cards()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if vlm is None:
        from vila_m3_core.model import VilaM3
        from vila_m3_core.model.hub import DEFAULT_MODEL

        vlm = VilaM3.from_pretrained(
            model_path or DEFAULT_MODEL, revision=revision, dtype=dtype, device=device, conv_mode=conv_mode
        )
    agent = Agent(
        vlm,
        cards=cards,
        use_cards=use_cards,
        enabled_experts=enabled,
        expert_config=expert_settings(device, expert_config),
        max_rounds=max_rounds,
        segmented_keyword="segmented" if segmented_rule else None,
        output_dir=out,
        generation={"temperature": temperature, "max_new_tokens": max_new_tokens},
    )
    try:
        answer = agent.ask(source, str(prompt), modality=modality, slice_index=slice_index)
    finally:
        if agent.last_trace is not None:
            agent.last_trace.write(out / "trace.json")
    shown = []
    for index, picture in enumerate(agent.current_input.shown if agent.current_input else []):
        path = out / f"input_{index}.jpg"
        picture.convert("RGB").save(path, quality=95)
        shown.append(str(path))
    record = {
        "prompt": prompt,
        "image": source,
        "modality": agent.current_input.modality if agent.current_input else None,
        **answer.to_dict(),
        "shown_images": shown,
        "trace": str(out / "trace.json"),
    }
    (out / "answer.json").write_text(jsonlib.dumps(record, indent=2) + "\n", encoding="utf-8")
    if json:
        print(jsonlib.dumps(record, indent=2))
    else:
        print(answer.text)
        if answer.notice:
            print(f"[expert] {answer.notice.strip()}")
        for key, path in answer.files.items():
            print(f"[file] {key}: {path}")
    return record


def chat(*args: Any, **kwargs: Any) -> None:
    """The ``vila-m3 chat`` verb: :func:`run_chat` without a return value (fire would print it)."""
    kwargs.pop("vlm", None)
    run_chat(*args, **kwargs)
