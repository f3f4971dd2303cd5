"""Conversation templates of VILA (NVlabs/VILA @355fda9 ``llava/conversation.py``), byte-exact.

The released VILA-M3 checkpoints were trained on prompts rendered by these templates, so every string here is
compatibility-critical: 3B and 13B use ``vicuna_v1`` (alias ``v1``), 8B uses ``llama_3``.

A conversation is a list of :class:`Turn`. Roles are ``user``, ``assistant`` and ``expert``; expert turns are
feedback from an expert model and are rendered in the user role, as the checkpoints were trained (each run of
consecutive expert turns becomes one user message, texts concatenated with no separator).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from vila_m3_core.errors import VilaM3Error

IMAGE_TOKEN = "<image>"
Role = Literal["user", "assistant", "expert"]


@dataclass
class Turn:
    """One message of a conversation.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"expert"`` (expert feedback, rendered as user).
        text: the message; contains one :data:`IMAGE_TOKEN` per entry of ``images``.
        images: image-likes (PIL image, path, numpy array) for the ``<image>`` tokens of ``text``, in order.
    """

    role: Role
    text: str
    images: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant", "expert"):
            raise VilaM3Error(f"Unknown turn role {self.role!r}; use 'user', 'assistant' or 'expert'.")


@dataclass(frozen=True)
class Template:
    """The fields of one VILA conversation template.

    ``style`` selects the rendering rule: ``two`` (vicuna), ``llama_3``, ``mpt`` (hermes-2) or ``plain``.
    ``stop`` lists the strings whose appearance ends generation.
    """

    name: str
    system: str
    roles: tuple[str, str]
    style: str
    sep: str
    sep2: str | None
    stop: tuple[str, ...]


VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAMA_3_SYSTEM = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "You are a helpful language and vision assistant. You are able to understand the visual content that the user "
    "provides, and assist the user with a variety of tasks using natural language."
)

TEMPLATES: dict[str, Template] = {
    "vicuna_v1": Template(
        name="vicuna_v1",
        system=VICUNA_SYSTEM,
        roles=("USER", "ASSISTANT"),
        style="two",
        sep=" ",
        sep2="</s>",
        stop=("</s>",),
    ),
    "llama_3": Template(
        name="llama_3",
        system=LLAMA_3_SYSTEM,
        roles=("<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        style="llama_3",
        sep="<|eot_id|>",
        sep2="<|end_of_text|>",
        stop=("<|eot_id|>", "<|end_of_text|>"),
    ),
    "hermes-2": Template(
        name="hermes-2",
        system="<|im_start|>system\nAnswer the questions.",
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
        style="mpt",
        sep="<|im_end|>",
        sep2=None,
        stop=("<|im_end|>",),
    ),
    # Stage-1 alignment template: bare messages joined by newlines. VILA's own ``plain`` has ``sep2=None`` and
    # crashes when asked to render an assistant message; stage 1 bypassed it. Here both separators are "\n".
    "plain": Template(name="plain", system="", roles=("", ""), style="plain", sep="\n", sep2="\n", stop=("\n",)),
}
ALIASES = {"v1": "vicuna_v1", "vicuna": "vicuna_v1", "llama3": "llama_3", "llama_v3": "llama_3", "hermes2": "hermes-2"}


def get_template(conv_mode: str) -> Template:
    """Return the template named ``conv_mode`` (aliases ``v1``, ``llama3``, ... accepted)."""
    name = ALIASES.get(conv_mode, conv_mode)
    if name not in TEMPLATES:
        known = ", ".join(sorted([*TEMPLATES, *ALIASES]))
        raise VilaM3Error(f"Unknown conv_mode {conv_mode!r}; choose one of: {known}.")
    return TEMPLATES[name]


def stop_strings(conv_mode: str) -> tuple[str, ...]:
    """Strings that end generation for ``conv_mode`` (vicuna: ``</s>``; llama_3: ``<|eot_id|>``, ``<|end_of_text|>``)."""
    return get_template(conv_mode).stop


def default_conv_mode(model_name_or_path: str, tokenizer_vocab: Sequence[str] | None = None) -> str:
    """The template a released checkpoint was trained with: 3B/13B -> ``vicuna_v1``, 8B -> ``llama_3``.

    The name decides first (``...-8B`` -> llama_3, ``...-3B``/``...-13B`` -> vicuna_v1); otherwise the tokenizer
    decides: a Llama-3 vocabulary (with ``<|start_header_id|>``) means ``llama_3``, anything else ``vicuna_v1``.
    """
    name = str(model_name_or_path).rstrip("/").split("/")[-1].lower()
    if re.search(r"(^|[^0-9])8b", name):
        return "llama_3"
    if re.search(r"(^|[^0-9])(3|13)b", name):
        return "vicuna_v1"
    if tokenizer_vocab is not None and "<|start_header_id|>" in tokenizer_vocab:
        return "llama_3"
    return "vicuna_v1"


def merge_expert_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Render-time view of a conversation: each run of expert turns becomes one user turn.

    Texts of the run are concatenated with no separator and their images kept in order (the reference's
    ``squash_expert_messages_into_user``).
    """
    merged: list[Turn] = []
    for turn in turns:
        if turn.role == "expert" and merged and merged[-1].role == "expert":
            merged[-1] = Turn("expert", merged[-1].text + turn.text, [*merged[-1].images, *turn.images])
        else:
            merged.append(Turn(turn.role, turn.text, list(turn.images)))
    return [Turn("user", t.text, t.images) if t.role == "expert" else t for t in merged]


def _render_messages(template: Template, messages: Sequence[tuple[int, str | None]]) -> str:
    """Render ``(role_index, text)`` pairs; ``None`` text is the empty generation cue."""
    t = template
    if t.style == "two":
        out = t.system + t.sep
        seps = (t.sep, t.sep2)
        for i, (role, text) in enumerate(messages):
            out += f"{t.roles[role]}: {text}{seps[i % 2]}" if text else f"{t.roles[role]}:"
        return out
    if t.style == "llama_3":
        out = t.system + t.sep
        for i, (role, text) in enumerate(messages):
            if text:
                out += t.roles[role] + text + (t.sep2 if i == len(messages) - 1 else t.sep)
            else:
                out += t.roles[role]
        return out
    if t.style == "mpt":
        out = t.system + t.sep
        for role, text in messages:
            out += t.roles[role] + text + t.sep if text else t.roles[role]
        return out
    if t.style == "plain":
        out = t.system
        seps = (t.sep, t.sep2)
        for i, (_, text) in enumerate(messages):
            out += text + seps[i % 2] if text else ""
        return out
    raise AssertionError(f"unhandled template style {t.style}")


def render_prompt(turns: Sequence[Turn], conv_mode: str, add_generation_prompt: bool = True) -> str:
    """Render ``turns`` with the template ``conv_mode``.

    Args:
        turns: the conversation; expert turns are merged into the user role; roles must then alternate
            user/assistant starting with user.
        conv_mode: template name (``vicuna_v1``, ``llama_3``, ``hermes-2``, ``plain``).
        add_generation_prompt: append the empty assistant cue (``ASSISTANT:`` / the llama_3 assistant header)
            so the model continues as the assistant. Always true for inference (the reference demo's omission of
            ``ASSISTANT:`` for vicuna_v1 was a bug and is not reproduced).

    Returns:
        The prompt string, with ``<image>`` placeholders left in place.
    """
    template = get_template(conv_mode)
    merged = merge_expert_turns(turns)
    messages: list[tuple[int, str | None]] = []
    for i, turn in enumerate(merged):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise VilaM3Error(
                f"Turn {i} has role {turn.role!r} but {expected!r} was expected: a conversation alternates user "
                "(or expert) and assistant turns, starting with user."
            )
        messages.append((0 if turn.role == "user" else 1, turn.text))
    if add_generation_prompt:
        if merged and merged[-1].role == "assistant":
            raise VilaM3Error("The conversation already ends with an assistant turn; add a user turn first.")
        messages.append((1, None))
    return _render_messages(template, messages)


def collect_images(turns: Sequence[Turn]) -> list[Any]:
    """All images of ``turns`` in the order their ``<image>`` tokens appear in the rendered prompt."""
    return [image for turn in turns for image in turn.images]


def count_image_tokens(text: str) -> int:
    """Number of ``<image>`` placeholders in ``text``."""
    return text.count(IMAGE_TOKEN)


def records_to_turns(conversations: Sequence[dict[str, str]]) -> list[Turn]:
    """Convert LLaVA/VILA record conversations (``from``: human/gpt, ``value``) to turns (no images attached)."""
    roles = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant", "expert": "expert"}
    try:
        return [Turn(roles[message["from"]], message["value"]) for message in conversations]
    except KeyError as err:
        raise VilaM3Error(f"Conversation message without a known 'from' role or without 'value': {err}") from None
