"""The agent's input side: read the image once, decide the modality, render what the VLM sees, build the user text.

Prompt wordings here are protocol text the released checkpoints were trained on (``agent_protocol.md`` §2.1, §4.3):
``cards + "<image>" + "This is a CT image.\\n" + prompt`` for a 2D image or a CT/MRI slice, and
``cards + "T1(contrast enhanced): <image>, T1: <image>, T2: <image>, FLAIR: <image> These are different MRI
modalities.\\n" + prompt`` for the four MRI sequences (in the BraTS channel order t1ce, t1, t2, flair, which the
labels now match; the reference demo fed them as t1, t1ce, t2, flair).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vila_m3_core.conversation import IMAGE_TOKEN
from vila_m3_core.errors import VilaM3Error

#: ``"This is a {modality} image.\n"``, left out when the modality is unknown.
MODALITY_TEXT = "This is a {modality} image.\n"
#: The four-sequence MRI text; one ``<image>`` per sequence, in the BraTS channel order t1ce, t1, t2, flair.
MRI_SEQUENCES_TEXT = (
    "T1(contrast enhanced): <image>, T1: <image>, T2: <image>, FLAIR: <image> These are different MRI modalities.\n"
)
#: Canonical modality names accepted as an override (case-insensitive); "Unknown" means no modality sentence.
MODALITIES = ("CT", "MRI", "CXR", "US", "cell imaging")
UNKNOWN = "Unknown"
#: The reference's prompt keywords, first hit wins (``get_modality``), matched as whole words, case-insensitive.
PROMPT_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("cxr", "CXR"),
    ("chest x-ray", "CXR"),
    ("ct image", "CT"),
    ("mri", "MRI"),
    ("magnetic resonance imaging", "MRI"),
    ("ultrasound", "US"),
    ("cell imaging", "cell imaging"),
)
# The reference named its chest X-ray samples ``cxr_*``; a 2D picture without headers has nothing else to go on.
_CXR_NAME_HINT = re.compile(r"(^|[^a-z])cxr([^a-z]|$)")


@dataclass
class AgentInput:
    """The current image of a conversation, read once.

    Attributes:
        source: the path, or the four MRI paths (t1ce, t1, t2, flair), handed to the experts.
        loaded: the :class:`vila_m3_core.imaging.LoadedImage` (passed to experts as ``ExpertRequest.volume``).
        modality: ``"CT"``, ``"MRI"``, ``"CXR"``, ... or ``None`` (unknown).
        modality_source: ``"override"``, ``"file"`` (headers, name, intensities), ``"file_name"`` (a 2D picture
            named ``cxr_*``, as the reference), ``"prompt"`` (keywords) or ``"unknown"``.
        shown: the pictures the VLM sees (PIL RGB): one, or four for the MRI sequences.
        slice_index: what experts render: the shown slice for ``"middle"``/int, ``"auto"`` kept as is.
        shown_slice: the axial index shown to the VLM (``None`` for 2D pictures).
        seconds: ``{"loading": s, "rendering": s}``.
    """

    source: str | list[str]
    loaded: Any
    modality: str | None
    modality_source: str
    shown: list[Any]
    slice_index: int | str
    shown_slice: int | None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def volume(self) -> Any:
        """The loaded image, under the name :class:`~vila_m3_core.experts.base.ExpertRequest` uses."""
        return self.loaded

    @property
    def is_mri_sequences(self) -> bool:
        """True for the four-sequence MRI input."""
        return isinstance(self.source, list) and len(self.source) == 4

    def describe(self) -> dict[str, Any]:
        """Trace fields of the ``input`` step."""
        return {
            "image": self.source,
            "file_type": getattr(self.loaded, "file_type", None),
            "shape": list(getattr(self.loaded.data, "shape", ())) if self.loaded is not None else None,
            "header": dict(getattr(self.loaded, "header", {}) or {}),
            "modality": self.modality,
            "modality_source": self.modality_source,
            "shown_images": len(self.shown),
            "shown_slice": self.shown_slice,
            "slice_index": self.slice_index,
            "seconds": dict(self.seconds),
        }


def canonical_modality(name: str | None) -> str | None:
    """``"ct"`` -> ``"CT"``, ``"unknown"``/``"auto"``/``None`` -> ``None``; other names must be in :data:`MODALITIES`."""
    if name is None or str(name).strip().lower() in ("", "auto", UNKNOWN.lower(), "none"):
        return None
    for known in MODALITIES:
        if str(name).strip().lower() == known.lower():
            return known
    raise VilaM3Error(f"Unknown modality {name!r}; use one of {', '.join(MODALITIES)}, Unknown or auto.")


def modality_from_prompt(prompt: str) -> str | None:
    """The reference's keyword rule on the prompt (first keyword in :data:`PROMPT_KEYWORDS` order wins)."""
    lowered = prompt.lower()
    for keyword, modality in PROMPT_KEYWORDS:
        if re.search(rf"(?<![a-z]){re.escape(keyword)}(?![a-z])", lowered):
            return modality
    return None


def _as_sources(image: Any, work_dir: Path) -> str | list[str]:
    """Paths for the experts: a PIL image is saved as PNG; comma-separated strings and lists become lists."""
    if hasattr(image, "save") and hasattr(image, "mode"):
        path = work_dir / f"input_{time.time_ns()}.png"
        image.convert("RGB").save(path)
        return str(path)
    if isinstance(image, Path):
        return str(image)
    if isinstance(image, str):
        if "," in image and not Path(image).exists():
            return [part.strip() for part in image.split(",") if part.strip()]
        return image
    if isinstance(image, Sequence):
        paths = [str(part) for part in image]
        return paths[0] if len(paths) == 1 else paths
    raise VilaM3Error(f"Unsupported image {type(image).__name__}: pass a file path, a DICOM folder or 4 MRI files.")


def prepare_input(
    image: Any,
    prompt: str = "",
    modality: str | None = None,
    slice_index: int | str = "middle",
    work_dir: str | Path | None = None,
) -> AgentInput:
    """Read ``image`` once, decide its modality (override, then file type/headers, then prompt keywords) and render
    what the VLM sees (the picture, one axial slice, or the same slice of the four MRI sequences).

    Args:
        image: a path (2D picture, NIfTI, NRRD, DICOM file or folder), four MRI paths (list or ``"a,b,c,d"``), or
            a PIL image (saved to ``work_dir`` so that experts get a file).
        prompt: the user's question (its keywords decide the modality when the file does not).
        modality: override, see :func:`canonical_modality`.
        slice_index: ``"middle"``, ``"auto"`` or an axial index (3D inputs).
        work_dir: folder for a saved PIL input.

    Raises:
        VilaM3Error: unreadable or unsupported input, a list that is not four MRI files, a 3D volume whose
            modality stays unknown (CT and MRI are rendered differently).
    """
    from vila_m3_core.experts.rendering import render_image_slice
    from vila_m3_core.imaging import load_any

    work_dir = Path(work_dir) if work_dir is not None else Path(".")
    sources = _as_sources(image, work_dir)
    if isinstance(sources, list) and len(sources) != 4:
        raise VilaM3Error(f"Several images must be the four MRI sequences t1ce, t1, t2, flair; got {len(sources)}.")
    start = time.perf_counter()
    override = canonical_modality(modality)
    loaded = load_any(sources, override)
    loading = time.perf_counter() - start
    if override is not None or (modality is not None and str(modality).strip().lower() == UNKNOWN.lower()):
        resolved, origin = override, "override"
    elif loaded.modality is not None:
        resolved, origin = loaded.modality, "file"
    elif not loaded.is_3d and isinstance(sources, str) and _CXR_NAME_HINT.search(Path(sources).name.lower()):
        resolved, origin = "CXR", "file_name"
    else:
        resolved = modality_from_prompt(prompt)
        origin = "prompt" if resolved else "unknown"
    loaded.modality = resolved
    start = time.perf_counter()
    channels = range(4) if isinstance(sources, list) else range(1)
    shown, shown_slice = [], None
    for channel in channels:
        picture, index = render_image_slice(loaded, slice_index, channel=channel, modality=resolved)
        shown.append(picture)
        shown_slice = None if index < 0 else index
    rendering = time.perf_counter() - start
    expert_slice = slice_index if str(slice_index).strip().lower() == "auto" or shown_slice is None else shown_slice
    return AgentInput(
        source=sources,
        loaded=loaded,
        modality=resolved,
        modality_source=origin,
        shown=shown,
        slice_index=expert_slice,
        shown_slice=shown_slice,
        seconds={"loading": loading, "rendering": rendering},
    )


def user_turn_text(prompt: str, current: AgentInput, cards_text: str) -> str:
    """The text of a user turn that carries an image (reference §4.3).

    - four MRI sequences: ``cards + MRI_SEQUENCES_TEXT + prompt`` (any ``<image>`` typed in the prompt removed);
    - otherwise: ``cards + "<image>" + modality sentence + prompt``, or ``cards + modality sentence + prompt`` when
      the user placed one ``<image>`` in the prompt.
    """
    if current.is_mri_sequences:
        return cards_text + MRI_SEQUENCES_TEXT + prompt.replace(IMAGE_TOKEN, "")
    modality_text = MODALITY_TEXT.format(modality=current.modality) if current.modality else ""
    typed = prompt.count(IMAGE_TOKEN)
    if typed == 0:
        return cards_text + IMAGE_TOKEN + modality_text + prompt
    if typed == 1:
        return cards_text + modality_text + prompt
    raise VilaM3Error(f"The prompt holds {typed} <image> tokens but one image is attached; keep at most one.")
