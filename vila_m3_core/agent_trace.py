"""The record of one agent answer: every generation, expert call and error, JSON-serialisable.

A :class:`Trace` is a list of steps (plain dicts); :meth:`Trace.summary` splits the wall time into generation,
expert and rendering seconds, and :meth:`Trace.write` stores it as ``trace.json`` next to the answer.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEP_TYPES = ("input", "generation", "expert", "message", "error")


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into JSON types: paths and unknown objects to strings, numpy/torch scalars to numbers.

    Images (PIL) are described by mode and size, arrays by shape and dtype; nothing is silently dropped.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "getpixel"):  # PIL image
        return {"image": {"mode": value.mode, "size": list(value.size)}}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if getattr(value, "ndim", len(value.shape)) == 0:
            return to_jsonable(value.item())
        return {"array": {"shape": list(value.shape), "dtype": str(value.dtype)}}
    if hasattr(value, "item") and callable(value.item):
        try:
            return to_jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


@dataclass
class Trace:
    """The steps of one :meth:`vila_m3_core.agent.Agent.ask` call.

    Step kinds (``"type"``): ``input`` (image, modality and its source, loading/rendering seconds),
    ``generation`` (round, prompt/new tokens when the VLM reports them, output, parse result, seconds),
    ``expert`` (name, args, inputs, outputs, files, seconds by phase), ``message`` (a loop message put into the
    conversation: not-available expert, parse problem), ``error`` (stage, error type, message).
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, step_type: str, **fields: Any) -> dict[str, Any]:
        """Append a step and return it (callers may add fields later, e.g. the parse result)."""
        if step_type not in STEP_TYPES:
            raise ValueError(f"unknown trace step type {step_type!r}")
        step = {"type": step_type, **fields}
        self.steps.append(step)
        return step

    def of_type(self, step_type: str) -> list[dict[str, Any]]:
        """The steps of one kind, in order."""
        return [step for step in self.steps if step["type"] == step_type]

    def summary(self) -> dict[str, float]:
        """Seconds by phase: ``generation``, ``expert`` (inference and loading), ``rendering``, ``total``.

        Rendering counts the slices shown to the VLM (input steps) and the experts' own ``rendering`` phase.
        """
        generation = sum(step["seconds"] for step in self.of_type("generation"))
        rendering = sum(step["seconds"].get("rendering", 0.0) for step in self.of_type("input"))
        expert = 0.0
        for step in self.of_type("expert"):
            phases = step["seconds"]
            rendering += phases.get("rendering", 0.0)
            expert += phases.get("total", 0.0) - phases.get("rendering", 0.0)
        loading = sum(step["seconds"].get("loading", 0.0) for step in self.of_type("input"))
        return {
            "generation": generation,
            "expert": expert,
            "rendering": rendering,
            "input_loading": loading,
            "total": time.perf_counter() - self.started,
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"steps": [...], "seconds": summary}``, JSON types only."""
        return {"steps": to_jsonable(self.steps), "seconds": self.summary()}

    def write(self, path: str | Path) -> Path:
        """Write the trace as indented JSON to ``path`` (parents created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


@dataclass
class AgentAnswer:
    """What :meth:`vila_m3_core.agent.Agent.ask` returns.

    Attributes:
        text: the last assistant output of this turn (the answer; the trigger sentence when no answer round ran).
        turns: the turns this call added to the conversation (user, assistant, expert, ...), in order.
        trace: the :class:`Trace` of this call.
        files: expert output files, keyed ``"<round>/<expert>/<name>"`` (segmentations, overlays).
        notice: the last loop/expert message when the turn ended on it (error, not available, "segmented"
            result) so that front-ends can show it next to ``text``; ``""`` otherwise.
    """

    text: str
    turns: list[Any]
    trace: Trace
    files: dict[str, str] = field(default_factory=dict)
    notice: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form: answer, notice, the new turns (role, text, number of images), files and the time split."""
        return {
            "answer": self.text,
            "notice": self.notice,
            "conversation": [
                {"role": turn.role, "text": turn.text, "images": len(getattr(turn, "images", []))}
                for turn in self.turns
            ],
            "files": dict(self.files),
            "seconds": self.trace.summary(),
        }
