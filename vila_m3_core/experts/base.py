"""The expert interface: what every expert model takes and returns, and the registry that finds them by name.

An expert is called by the VLM with a tag such as ``<VISTA3D(hepatic tumor)>``. The agent turns the parsed tag
into an :class:`ExpertRequest`, calls :meth:`Expert.run`, and feeds the :class:`ExpertResult` back into the
conversation. Experts know nothing about the VLM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vila_m3_core.errors import VilaM3Error


@dataclass
class ExpertRequest:
    """One expert invocation.

    Attributes:
        image: the original input: a 2D image file, a NIfTI/NRRD file, a DICOM file or series folder, or a list
            of four MRI files in the order t1ce, t1, t2, flair.
        args: the argument parsed from the tag (``"hepatic tumor"``); ``None`` means the expert's default.
        prompt: the user's original question (used in the instruction that follows the result).
        trigger: the VLM output that called the expert (the "segmented" rule reads it).
        output_dir: where the expert writes its files (segmentations, overlays).
        slice_index: which axial slice to render for 3D inputs: an int, ``"middle"`` or ``"auto"`` (key slice).
        volume: an already loaded image (from :mod:`vila_m3_core.imaging`), so the expert need not read it again.
    """

    image: str | list[str]
    args: str | None = None
    prompt: str = ""
    trigger: str = ""
    output_dir: str = "."
    slice_index: int | str = "middle"
    volume: Any = None


@dataclass
class ExpertResult:
    """What an expert gives back.

    Attributes:
        text: feedback text for the conversation; contains one ``<image>`` per entry of ``images``.
        images: overlay images (PIL) in the order of the ``<image>`` tokens in ``text``.
        instruction: the follow-up instruction ("Use this result to respond to this prompt:\\n..."), or ``""``
            when no second generation should happen (the "segmented" rule).
        files: named output files, e.g. ``{"segmentation": "/out/seg.nii.gz"}``.
        seconds: timings in seconds by phase, e.g. ``{"load": 0.1, "inference": 2.0, "rendering": 0.05}``.
        data: structured results (scores per class, label volumes in ml, ...), JSON-serialisable.
    """

    text: str
    images: list[Any] = field(default_factory=list)
    instruction: str = ""
    files: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


class Expert(ABC):
    """An expert model. Subclasses load their network once (lazily, on first use) and keep it."""

    #: the tag name the VLM uses, e.g. ``"CXR"``
    name: str = ""

    @abstractmethod
    def run(self, request: ExpertRequest) -> ExpertResult:
        """Run the expert on ``request.image`` and return the feedback for the conversation."""


_REGISTRY: dict[str, Callable[..., Expert]] = {}


def register_expert(name: str, factory: Callable[..., Expert]) -> None:
    """Register ``factory(**config) -> Expert`` under the tag name ``name`` (case-insensitive)."""
    _REGISTRY[name.upper()] = factory


def available_experts() -> list[str]:
    """Names of the registered experts."""
    return sorted(_REGISTRY)


def create_expert(name: str, **config: Any) -> Expert:
    """Build the expert registered as ``name`` with ``config`` (weights path, device, ...)."""
    try:
        factory = _REGISTRY[name.upper()]
    except KeyError:
        raise VilaM3Error(f"No expert named {name!r}; available: {', '.join(available_experts()) or 'none'}.") from None
    return factory(**config)
