"""Parse the expert call the VLM emits (``<VISTA3D(hepatic tumor)>``) into a structured result. Never raises.

Grammar: a *tag* is the text between ``<`` and the next ``>`` on one line (the reference regex ``<(.*?)>``).
A tag is a *call* when it reads ``NAME``, ``NAME()`` or ``NAME(args)``, with ``NAME`` a known expert, an
upper-case word (``<SAM>``) or any word followed by parentheses (``<Foo(x)>``); other tags (``<image>``, ``<b>``)
are not calls.

Reference-compatible by default (``single_tag=True``): the output must contain exactly one tag, as the reference
required; ``<VISTA3D>`` and ``<VISTA3D()>`` mean the expert's default argument (``everything``). Added tolerance:
spaces around the name and the argument, quotes around the argument (``'organs'``, ``"organs"``), its case and
inner spacing (``Hepatic  Tumor``), a missing closing parenthesis, and the expert name's case. Instead of silently
doing nothing (the reference), an unknown expert, an unknown argument, several arguments or several tags give a
:class:`ParseResult` whose ``status`` and ``message`` the agent loop turns into a message for the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# The reference's tag pattern: non-greedy, one line (no DOTALL), every match collected.
TAG_PATTERN = re.compile(r"<(.*?)>")
_CALL_PATTERN = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.\-]*)\s*(\(.*)?$", re.DOTALL)
_UPPERCASE_NAME = re.compile(r"^[A-Z][A-Z0-9_\-]*$")
# Quote characters the VLM might wrap an argument in (the card lists arguments in single quotes).
_QUOTES = "'\"`\u2018\u2019\u201c\u201d"
# Placeholders meaning "no argument": the card's own "Valid args are: None" and the literal "(args)".
_NO_ARGUMENT_WORDS = {"", "none", "args", "null"}
# Upper-case tags that are never expert calls.
_NOT_CALLS = {"IMAGE"}


class ParseStatus(str, Enum):
    """Outcome of :func:`parse_expert_call`."""

    NO_CALL = "no_call"  # no expert call in the text
    CALL = "call"  # exactly one valid call: ``ParseResult.call`` is set
    UNKNOWN_EXPERT = "unknown_expert"  # a call to a name no card knows
    UNKNOWN_ARGUMENT = "unknown_argument"  # a known expert with an argument it does not accept
    MULTIPLE_ARGUMENTS = "multiple_arguments"  # ``<VISTA3D(liver)(spleen)>``
    MULTIPLE_TAGS = "multiple_tags"  # more than one tag where exactly one is required


@dataclass(frozen=True)
class ArgSpec:
    """What one expert accepts as argument.

    Attributes:
        name: the tag name, e.g. ``"VISTA3D"``.
        accepted_args: the accepted arguments (lower case); ``None`` accepts any argument; ``()`` takes none.
        default_args: the argument used for ``<NAME>`` / ``<NAME()>``; ``None`` for experts without arguments.
    """

    name: str
    accepted_args: tuple[str, ...] | None = None
    default_args: str | None = None


@dataclass(frozen=True)
class ExpertCall:
    """One expert call: ``name`` as spelled on the card, ``args`` normalised (or ``None``), ``raw`` the tag."""

    name: str
    args: str | None
    raw: str


@dataclass
class ParseResult:
    """The structured outcome of parsing one VLM output.

    Attributes:
        status: see :class:`ParseStatus`.
        call: the call when ``status`` is ``CALL`` (also the best guess for ``UNKNOWN_ARGUMENT``: name known).
        tags: every ``<...>`` tag found, in order, including the angle brackets.
        message: for problem statuses, a sentence for the VLM/user saying what was wrong and what is accepted.
        warnings: tolerated deviations (argument given to an expert that takes none, name matched by substring,
            missing closing parenthesis, ...); recorded in the trace, never silently dropped.
    """

    status: ParseStatus
    call: ExpertCall | None = None
    tags: list[str] = field(default_factory=list)
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def is_call(self) -> bool:
        """True when exactly one valid call was found."""
        return self.status is ParseStatus.CALL

    @property
    def is_problem(self) -> bool:
        """True when the text tried to call an expert but the call cannot be run as written."""
        return self.status not in (ParseStatus.CALL, ParseStatus.NO_CALL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form for the trace."""
        call = None if self.call is None else {"name": self.call.name, "args": self.call.args, "raw": self.call.raw}
        return {
            "status": self.status.value,
            "call": call,
            "tags": list(self.tags),
            "message": self.message,
            "warnings": list(self.warnings),
        }


def _as_arg_spec(expert: Any) -> ArgSpec:
    """Accept an :class:`ArgSpec`, a model card (anything with ``arg_spec()``) or a bare name (any argument)."""
    if isinstance(expert, ArgSpec):
        return expert
    if isinstance(expert, str):
        return ArgSpec(name=expert)
    return expert.arg_spec()


def normalize_argument(text: str) -> str:
    """Strip spaces and surrounding quotes, lower-case, and collapse inner whitespace and underscores.

    >>> normalize_argument(" 'Hepatic  Tumor' ")
    'hepatic tumor'
    """
    value = text.strip()
    # Strip nested quote layers (``"'organs'"``) with the spaces between them.
    while len(value) >= 1 and (value[0] in _QUOTES or value[-1] in _QUOTES):
        value = value.strip(_QUOTES).strip()
    return " ".join(value.replace("_", " ").split()).lower()


@dataclass(frozen=True)
class _Tag:
    raw: str  # with angle brackets
    name: str  # as written
    arg_text: str | None  # text inside the parentheses, ``None`` without parentheses
    closed: bool  # the closing parenthesis was present
    extra_groups: bool  # more than one parenthesised group
    note: str = ""  # a tolerated deviation, reported as a warning


def _tag_from_parts(raw: str, name: str, rest: str, note: str = "") -> _Tag:
    """Build a call from its name and the text after it (``""`` or ``"(args)"``)."""
    if not rest:
        return _Tag(raw, name, None, True, False, note)
    inner = rest[1:]
    closed = inner.endswith(")")
    if closed:
        inner = inner[:-1]
    return _Tag(raw, name, inner, closed, "(" in inner or ")" in inner, note)


def _split_tag(content: str, known_upper: set[str]) -> _Tag | None:
    """Split a tag's content into name and argument text, or return ``None`` when it is not a call."""
    raw = f"<{content}>"
    match = _CALL_PATTERN.match(content)
    if match is not None:
        name, rest = match.group(1), (match.group(2) or "").rstrip()
        if rest:
            return _tag_from_parts(raw, name, rest)
        # Without parentheses only expert-like names are calls: <VISTA3D>, <SAM>; not <image> or <br>.
        if name.upper() in known_upper or (_UPPERCASE_NAME.match(name) and name.upper() not in _NOT_CALLS):
            return _tag_from_parts(raw, name, "")
    # Words around a known name (``<trigger VISTA3D(liver)>``): the reference matched by substring; so do we,
    # with a warning, reading the name and what follows it.
    upper = content.upper()
    for known in sorted(known_upper, key=len, reverse=True):
        position = upper.find(known)
        if position >= 0:
            rest = content[position + len(known) :].strip()
            if rest and not rest.startswith("("):
                rest = f"({rest})"  # ``<VISTA3D organs>``: the words after the name are the argument
            note = f"text around the expert name ignored in {raw}"
            return _tag_from_parts(raw, content[position : position + len(known)], rest.rstrip(), note)
    return None


def _find_known_name(name: str, specs: dict[str, ArgSpec]) -> tuple[ArgSpec | None, str]:
    """Match ``name`` to a card: exactly (any case), else by substring as the reference did (with a warning)."""
    spec = specs.get(name.upper())
    if spec is not None:
        return spec, ""
    contained = [spec for upper, spec in specs.items() if upper in name.upper()]
    if len(contained) == 1:
        return contained[0], f"expert name {name!r} read as {contained[0].name!r}"
    return None, ""


def _describe_args(spec: ArgSpec) -> str:
    if not spec.accepted_args:
        return "it takes no arguments"
    return "valid arguments are: " + ", ".join(repr(arg) for arg in spec.accepted_args)


def parse_expert_call(text: str, known_experts: Iterable[Any] | None = None, single_tag: bool = True) -> ParseResult:
    """Find and validate the expert call in a VLM output.

    Args:
        text: the VLM output, e.g. ``"This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. "``.
        known_experts: the experts that exist, as :class:`ArgSpec`, model cards (``card.arg_spec()``) or names
            (a bare name accepts any argument); ``None``: the default model cards.
        single_tag: ``True`` (reference behaviour) requires exactly one ``<...>`` tag in the whole text, so any
            other angle-bracket text next to a call makes it ``MULTIPLE_TAGS``; ``False`` counts only calls.

    Returns:
        A :class:`ParseResult`; never raises for any string.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if known_experts is None:
        from vila_m3_core.experts.cards import load_cards  # cards imports this module: import on use

        known_experts = load_cards().cards
    specs: dict[str, ArgSpec] = {}
    for expert in known_experts:
        spec = _as_arg_spec(expert)
        specs.setdefault(spec.name.upper(), spec)
    raw_tags = [f"<{content}>" for content in TAG_PATTERN.findall(text)]
    calls = [tag for tag in (_split_tag(content, set(specs)) for content in TAG_PATTERN.findall(text)) if tag]
    if not calls:
        return ParseResult(ParseStatus.NO_CALL, tags=raw_tags)
    counted = raw_tags if single_tag else [tag.raw for tag in calls]
    if len(counted) > 1:
        message = (
            f"Found {len(counted)} tags ({', '.join(counted)}); exactly one expert call per answer is supported, "
            "written as <NAME(args)> with no other angle-bracket text."
        )
        return ParseResult(ParseStatus.MULTIPLE_TAGS, tags=raw_tags, message=message)
    return _validate(calls[0], specs, raw_tags)


def _validate(tag: _Tag, specs: dict[str, ArgSpec], raw_tags: list[str]) -> ParseResult:
    """Check one call against the known experts and normalise its argument."""
    warnings: list[str] = [tag.note] if tag.note else []
    spec, name_warning = _find_known_name(tag.name, specs)
    if spec is None:
        names = ", ".join(f"<{spec.name}>" for spec in specs.values()) or "none"
        message = f"There is no expert model named {tag.name!r}. Available expert models: {names}."
        return ParseResult(ParseStatus.UNKNOWN_EXPERT, tags=raw_tags, message=message)
    if name_warning:
        warnings.append(name_warning)
    if tag.extra_groups:
        message = (
            f"Several arguments were given to {spec.name} in {tag.raw}; one argument per call is supported "
            f"({_describe_args(spec)})."
        )
        return ParseResult(ParseStatus.MULTIPLE_ARGUMENTS, tags=raw_tags, message=message, warnings=warnings)
    if not tag.closed:
        warnings.append(f"missing ')' in {tag.raw}")
    argument = normalize_argument(tag.arg_text or "")
    if spec.accepted_args == ():
        if argument not in _NO_ARGUMENT_WORDS:
            warnings.append(f"{spec.name} takes no arguments; ignored {tag.arg_text!r}")
        return ParseResult(ParseStatus.CALL, ExpertCall(spec.name, None, tag.raw), raw_tags, warnings=warnings)
    if argument in _NO_ARGUMENT_WORDS:
        return ParseResult(
            ParseStatus.CALL, ExpertCall(spec.name, spec.default_args, tag.raw), raw_tags, warnings=warnings
        )
    if spec.accepted_args is not None and argument not in spec.accepted_args:
        message = f"{tag.arg_text.strip()!r} is not accepted by the {spec.name} expert model; {_describe_args(spec)}."
        call = ExpertCall(spec.name, argument, tag.raw)
        return ParseResult(ParseStatus.UNKNOWN_ARGUMENT, call, raw_tags, message=message, warnings=warnings)
    return ParseResult(ParseStatus.CALL, ExpertCall(spec.name, argument, tag.raw), raw_tags, warnings=warnings)
