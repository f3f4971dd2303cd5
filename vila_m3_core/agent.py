"""The agent loop, in one place: model cards + image + prompt -> VLM -> expert call -> expert -> VLM -> answer.

Reference-compatible by default (``agent_protocol.md`` §1, §2, §4.3): the first user turn is
``cards + "<image>" + "This is a CT image.\\n" + prompt`` (MRI: the four-sequence text with four images), one
expert round per user turn (``max_rounds=1``), expert feedback as ``expert`` turns (merged into the user role
by the conversation templates), the instruction turn after the result, and the "segmented" rule. Added: chaining
(``max_rounds > 1``) with a guard against repeated calls, a "not available" message for cards without a runner,
parse problems and expert errors reported back as expert messages, and a JSON trace of every step.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vila_m3_core.agent_inputs import AgentInput, prepare_input, user_turn_text
from vila_m3_core.agent_trace import AgentAnswer, Trace
from vila_m3_core.conversation import IMAGE_TOKEN, Turn
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import Expert, ExpertRequest, ExpertResult, create_expert
from vila_m3_core.experts.cards import CardSet, load_cards, render_model_cards
from vila_m3_core.experts.parsing import ArgSpec, ExpertCall, ParseStatus, parse_expert_call

logger = logging.getLogger(__name__)

__all__ = ["Agent", "AgentAnswer", "Trace", "not_available_message", "vlm_view"]


def not_available_message(name: str, reason: str) -> str:
    """The expert message for a call to an expert that cannot run here (no runner installed, not enabled)."""
    return f"The expert model {name} is not available: {reason}. "


class _NotAvailable(Exception):
    """An expert that is on a card but cannot be built here (no runner, not enabled, runner not importable)."""


class Agent:
    """A conversation with the VLM and its experts.

    Args:
        vlm: any object with ``generate(turns: list[Turn], **gen) -> str``; when its ``generate`` has a
            ``return_details`` parameter, it is called with ``return_details=True`` and must return an object
            with ``.text`` (and optionally ``.prompt_tokens``, ``.new_tokens``), which the trace records.
        experts: ready expert instances by tag name (they take precedence over the cards' runners).
        cards: the model cards (default: :func:`load_cards`); their text opens every user turn with an image.
        use_cards: ``False`` leaves the card text out of the prompt (the demo's "Use Model Cards" box).
        enabled_experts: tag names allowed to run (default: all); others answer "not available".
        expert_config: keyword arguments for building each expert from its runner, by tag name
            (e.g. ``{"VISTA3D": {"bundle_dir": ..., "device": "cpu"}}``); ``"*"`` applies to all.
        max_rounds: expert calls per user turn (1 = reference; more allows chaining, e.g. CXR then VISTA3D).
        segmented_keyword: the "segmented" rule (no answer round when the trigger contains it; CXR excepted);
            ``None`` always answers.
        single_tag: the parser's reference rule that an output must contain exactly one ``<...>`` tag.
        output_dir: where experts write segmentations and overlays (default: a new temporary folder).
        generation: default generation keyword arguments (``temperature``, ``max_new_tokens``, ...).
    """

    def __init__(
        self,
        vlm: Any,
        experts: Mapping[str, Expert] | None = None,
        *,
        cards: CardSet | None = None,
        use_cards: bool = True,
        enabled_experts: Iterable[str] | None = None,
        expert_config: Mapping[str, Mapping[str, Any]] | None = None,
        max_rounds: int = 1,
        segmented_keyword: str | None = feedback.SEGMENTED_KEYWORD,
        single_tag: bool = True,
        output_dir: str | Path | None = None,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        if not hasattr(vlm, "generate"):
            raise VilaM3Error(f"The VLM passed to Agent has no generate() method (got {type(vlm).__name__}).")
        if int(max_rounds) < 0:
            raise VilaM3Error(f"max_rounds must be 0 or more, not {max_rounds}.")
        self.vlm = vlm
        self.cards = cards if cards is not None else load_cards()
        self.cards_text = render_model_cards(self.cards) if use_cards else ""
        self._experts: dict[str, Expert] = {name.upper(): expert for name, expert in (experts or {}).items()}
        self._enabled = None if enabled_experts is None else {name.upper() for name in enabled_experts}
        self._expert_config = {name.upper(): dict(config) for name, config in (expert_config or {}).items()}
        self.max_rounds = int(max_rounds)
        self.segmented_keyword = segmented_keyword
        self.single_tag = single_tag
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self.generation = dict(generation or {})
        self.history: list[Turn] = []
        self.current_input: AgentInput | None = None
        self.last_trace: Trace | None = None
        self._turn_index = 0
        self._wants_details = _accepts_keyword(vlm.generate, "return_details")

    # ----------------------------------------------------------------------------------------- public API
    @property
    def output_dir(self) -> Path:
        """The folder for expert outputs (created on first use)."""
        if self._output_dir is None:
            self._output_dir = Path(tempfile.mkdtemp(prefix="vila_m3_agent_"))
        self._output_dir.mkdir(parents=True, exist_ok=True)
        return self._output_dir

    @output_dir.setter
    def output_dir(self, folder: str | Path) -> None:
        """Send later expert outputs to ``folder`` (e.g. one folder per served request)."""
        self._output_dir = Path(folder)

    def known_experts(self) -> list[ArgSpec]:
        """What the parser recognises: every card plus every expert instance given without a card."""
        specs = [card.arg_spec() for card in self.cards.cards]
        carded = {spec.name.upper() for spec in specs}
        specs += [ArgSpec(name) for name in self._experts if name not in carded]
        return specs

    def reset(self) -> None:
        """Forget the conversation and the current image (loaded experts are kept)."""
        self.history.clear()
        self.current_input = None

    def ask(
        self,
        image: Any = None,
        prompt: str = "",
        *,
        modality: str | None = None,
        slice_index: int | str = "middle",
        **generation: Any,
    ) -> AgentAnswer:
        """Add a user turn and run generate -> parse -> expert -> generate until an answer.

        Args:
            image: a 2D image file (or PIL image), a NIfTI/NRRD file, a DICOM file or series folder, or four MRI
                files in the order t1ce, t1, t2, flair; ``None`` for a follow-up that reuses the last image.
            prompt: the user's question.
            modality: override (``CT``, ``MRI``, ``CXR``, or ``Unknown``); default: from the file, then the prompt.
            slice_index: axial slice of a 3D image: an int, ``"middle"`` or ``"auto"`` (key slice, chosen by the
                expert from its segmentation; the VLM first sees the middle slice).
            generation: overrides of the generation keyword arguments for this turn.

        Returns:
            An :class:`AgentAnswer` with the answer text, the new turns and the trace.
        """
        trace = Trace()
        self.last_trace = trace
        self._turn_index += 1
        start = len(self.history)
        if image is not None:
            self.current_input = prepare_input(
                image, prompt=prompt, modality=modality, slice_index=slice_index, work_dir=self.output_dir
            )
            trace.add("input", **self.current_input.describe())
            text = user_turn_text(prompt, self.current_input, self.cards_text)
            self.history.append(Turn("user", text, list(self.current_input.shown)))
        else:
            if modality is not None or slice_index != "middle":
                raise VilaM3Error("modality and slice_index apply to a new image; pass the image again to change them.")
            if IMAGE_TOKEN in prompt:
                raise VilaM3Error("The prompt contains <image> but no image is attached; pass image=... or drop it.")
            self.history.append(Turn("user", prompt))
        files: dict[str, str] = {}
        # The question repeated in the instruction and given to experts: without image placeholders, whose
        # images are in the first turn (the reference repeated them, breaking the image count).
        question = prompt.replace(IMAGE_TOKEN, "").strip() if IMAGE_TOKEN in prompt else prompt
        try:
            notice = self._run_rounds(question, trace, files, {**self.generation, **generation})
        except Exception as err:
            # A VLM failure (context too long, bad settings): leave the conversation as it was before this call.
            trace.add("error", stage="generation", error_type=type(err).__name__, message=str(err))
            del self.history[start:]
            raise
        turns = self.history[start:]
        answer = next((turn.text for turn in reversed(turns) if turn.role == "assistant"), "")
        return AgentAnswer(text=answer, turns=list(turns), trace=trace, files=files, notice=notice)

    # ------------------------------------------------------------------------------------------ the loop
    def _run_rounds(self, prompt: str, trace: Trace, files: dict[str, str], generation: dict[str, Any]) -> str:
        """Generate; while the output calls an expert and rounds remain, feed the result back and generate again.

        Returns:
            The notice (last loop/expert message) when the turn ends on an expert message, else ``""``.
        """
        executed: set[tuple[str, str | None]] = set()
        rounds = 0
        while True:
            output = self._generate(trace, rounds, generation)
            parse = parse_expert_call(output, self.known_experts(), single_tag=self.single_tag)
            trace.steps[-1]["parse"] = parse.to_dict()
            if parse.status is ParseStatus.NO_CALL:
                return ""
            if rounds >= self.max_rounds:
                # The round budget is spent: recorded in the trace, never silently dropped.
                trace.add("error", stage="round_limit", message=f"{parse.tags} not run: max_rounds={self.max_rounds}")
                return ""
            rounds += 1
            if parse.is_problem:
                turn = Turn("expert", parse.message + " ")
                trace.add("message", round=rounds, reason=parse.status.value, text=turn.text)
                # Reference: a call that cannot run ends the turn; with rounds left the VLM may try again.
                instruction = feedback.instruction(prompt) if rounds < self.max_rounds else None
            else:
                call = parse.call
                assert call is not None  # parse.is_call
                if (call.name, call.args) in executed:
                    trace.add("error", stage="loop_guard", message=f"{call.raw} repeats an earlier call; stopped")
                    return ""
                executed.add((call.name, call.args))
                turn, instruction = self._call_expert(call, output, prompt, rounds, trace, files)
            self.history.append(turn)
            if instruction is None:
                return turn.text
            # A separate expert turn, as the reference; merged with the result into one user message.
            self.history.append(Turn("expert", instruction))

    def _generate(self, trace: Trace, round_index: int, generation: dict[str, Any]) -> str:
        """One VLM generation on the whole history; appends the assistant turn and a trace step."""
        start = time.perf_counter()
        details = None
        if self._wants_details:
            details = self.vlm.generate(vlm_view(self.history), return_details=True, **generation)
            text = details.text
        else:
            text = self.vlm.generate(vlm_view(self.history), **generation)
        if not isinstance(text, str):
            raise VilaM3Error(f"The VLM's generate() returned {type(text).__name__}, expected str.")
        seconds = time.perf_counter() - start
        step = trace.add("generation", round=round_index, output=text, seconds=seconds)
        for key in ("prompt_tokens", "new_tokens"):
            value = getattr(details, key, None)
            if value is not None:
                step[key] = value
        if details is not None and getattr(details, "seconds", None) is not None:
            step["vlm_seconds"] = details.seconds
        self.history.append(Turn("assistant", text))
        return text

    # ------------------------------------------------------------------------------------------- experts
    def _call_expert(
        self, call: ExpertCall, trigger: str, prompt: str, round_index: int, trace: Trace, files: dict[str, str]
    ) -> tuple[Turn, str | None]:
        """Run one expert call; return its expert turn and the instruction for an answer round (``None``: stop).

        Every outcome becomes an expert turn: the result (text + overlay images), "not available", or the
        reference's error text. After a result the answer round follows unless the "segmented" rule applies;
        after a failure it follows only when rounds remain (the reference stopped).
        """
        step = trace.add("expert", round=round_index, name=call.name, args=call.args, raw=call.raw)
        start = time.perf_counter()
        retry = feedback.instruction(prompt) if round_index < self.max_rounds else None
        source = self.current_input
        try:
            expert = self._expert(call.name)
            if source is None:
                raise VilaM3Error("There is no image in this conversation for the expert model; attach one first.")
            request = ExpertRequest(
                image=source.source,
                args=call.args,
                prompt=prompt,
                trigger=trigger,
                output_dir=str(self._round_dir(round_index, call.name)),
                slice_index=source.slice_index,
                volume=source.volume,
            )
            step["inputs"] = {"image": request.image, "args": request.args, "slice_index": request.slice_index}
            result = expert.run(request)
            _check_result(call.name, result)
        except _NotAvailable as reason:
            text = not_available_message(call.name, str(reason))
            step.update(status="not_available", outputs={"text": text}, seconds={"total": 0.0})
            return Turn("expert", text), retry
        except Exception as err:  # noqa: BLE001 - any expert failure becomes a message; the conversation goes on
            text = feedback.error_feedback(err)
            step.update(status="error", outputs={"text": text}, seconds={"total": time.perf_counter() - start})
            trace.add(
                "error",
                stage="expert",
                expert=call.name,
                error_type=type(err).__name__,
                message=str(err),
                traceback=traceback.format_exc(limit=8),
            )
            logger.warning("expert %s failed: %s", call.name, err)
            return Turn("expert", text), retry
        seconds = {**result.seconds, "total": time.perf_counter() - start}
        saved = self._save_files(result, request.output_dir, round_index, call.name, files)
        # The agent owns the "segmented" rule (configurable); the expert's instruction wording is kept otherwise.
        skip_answer = feedback.skips_second_round(trigger, call.name, self.segmented_keyword)
        step.update(
            status="ok",
            outputs={"text": result.text, "instruction": result.instruction, "images": len(result.images)},
            data=result.data,
            files=saved,
            answer_round=not skip_answer,
            seconds=seconds,
        )
        instruction = None if skip_answer else (result.instruction or feedback.instruction(prompt))
        return Turn("expert", result.text, list(result.images)), instruction

    def _expert(self, name: str) -> Expert:
        """The expert for tag ``name``: a given instance, else built once from its card's runner and kept."""
        key = name.upper()
        if self._enabled is not None and key not in self._enabled:
            raise _NotAvailable(f"it is not enabled here (enabled: {', '.join(sorted(self._enabled)) or 'none'})")
        if key in self._experts:
            return self._experts[key]
        card = self.cards.get(name)
        if card is None or not card.runner:
            raise _NotAvailable("no runner is installed for it")
        config = {**self._expert_config.get("*", {}), **self._expert_config.get(key, {})}
        module_name, _, factory_name = card.runner.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise _NotAvailable(f"its runner {module_name} cannot be imported ({err})") from err
        if factory_name:
            expert = getattr(module, factory_name)(**config)
        else:
            expert = create_expert(card.name, **config)
        self._experts[key] = expert
        return expert

    def _round_dir(self, round_index: int, name: str) -> Path:
        path = self.output_dir / f"turn{self._turn_index}_round{round_index}_{name.lower()}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _save_files(
        self, result: ExpertResult, out_dir: str, round_index: int, name: str, files: dict[str, str]
    ) -> dict[str, str]:
        """Record the expert's files; save its overlay images as JPEG next to them when it did not."""
        saved = {key: str(path) for key, path in result.files.items()}
        has_overlay_files = any(key.startswith("overlay") for key in saved)
        for index, image in enumerate(result.images):
            if hasattr(image, "save") and not has_overlay_files:  # keep what the VLM saw, unless already saved
                path = Path(out_dir) / f"overlay_{index}.jpg"
                image.convert("RGB").save(path, quality=95)
                saved.setdefault(f"overlay_{index}", str(path))
        prefix = f"turn{self._turn_index}/round{round_index}/{name.lower()}"
        files.update({f"{prefix}/{key}": path for key, path in saved.items()})
        return saved


def vlm_view(history: list[Turn]) -> list[Turn]:
    """The history as the VLM receives it: a user turn that follows expert turns joins them in one user turn.

    A turn that ended on an expert message (error, "not available", the "segmented" rule) has no assistant reply,
    so the next user question would make two user messages in a row, which the templates cannot render (the
    reference sent them anyway). The question is appended to the expert text, after a newline unless that text
    already ends in whitespace; the agent's own history keeps the true roles.

    Every turn must carry one image per ``<image>``. A token with no image behind it (one the VLM wrote in its own
    output, or one quoted in an expert message such as "Found 2 tags (<image>, <CXR()>)") would break the image count
    of every later prompt, so surplus tokens are removed here (the history and the trace keep the raw text).
    """
    view: list[Turn] = []
    for turn in map(_without_surplus_image_tokens, history):
        if turn.role == "user" and view and view[-1].role == "expert":
            run_start = len(view)
            while run_start > 0 and view[run_start - 1].role == "expert":
                run_start -= 1
            run = view[run_start:]
            joined = "".join(item.text for item in run)
            separator = "" if not joined or joined[-1].isspace() else "\n"
            images = [image for item in run for image in item.images] + list(turn.images)
            view[run_start:] = [Turn("user", joined + separator + turn.text, images)]
        else:
            view.append(turn)
    return view


def _without_surplus_image_tokens(turn: Turn) -> Turn:
    """``turn`` with the ``<image>`` tokens beyond ``len(turn.images)`` removed (the last ones first)."""
    surplus = turn.text.count(IMAGE_TOKEN) - len(turn.images)
    if surplus <= 0:
        return turn
    head, *tails = turn.text.rsplit(IMAGE_TOKEN, surplus)
    return Turn(turn.role, head + "".join(tails), list(turn.images))


def _check_result(name: str, result: Any) -> None:
    """Reject results that break the contract (text/image pairing) before they reach the conversation."""
    if not isinstance(result, ExpertResult):
        raise VilaM3Error(f"Expert {name} returned {type(result).__name__}, not an ExpertResult.")
    tokens = result.text.count(IMAGE_TOKEN)
    if tokens != len(result.images):
        raise VilaM3Error(f"Expert {name} returned {tokens} <image> token(s) for {len(result.images)} image(s).")


def _accepts_keyword(function: Any, keyword: str) -> bool:
    """True when ``function`` names ``keyword`` as a parameter (a bare ``**kwargs`` does not count)."""
    import inspect

    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
