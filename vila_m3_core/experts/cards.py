"""Model cards: the data files in ``model_zoo_cards/`` and the prompt text the VLM reads.

With the default cards and order, :func:`render_model_cards` is byte-identical to the string the released
VILA-M3 checkpoints were trained on (1373 bytes; see ``docs/agent.md``). A user adds an expert by dropping a card
file into a card folder and installing its runner (a module that calls ``register_expert``); nothing in the agent
loop changes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.parsing import ArgSpec


#: where the default cards live (the repository's ``model_zoo_cards/`` folder)
def _default_card_dir() -> Path:
    """The repository's ``model_zoo_cards/`` (source checkout, editable install), else the copy a wheel installs
    under ``<prefix>/share/vila-m3/model_zoo_cards`` (setup.cfg ``data_files``)."""
    source = Path(__file__).resolve().parents[2] / "model_zoo_cards"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "vila-m3" / "model_zoo_cards"


DEFAULT_CARD_DIR = _default_card_dir()
#: extra card folders, separated by ``os.pathsep``, read after the default ones
CARD_DIRS_ENV = "VILA_M3_CARD_DIRS"
INDEX_FILE = "index.json"
_CARD_SUFFIXES = (".json", ".yaml", ".yml")
_REQUIRED_FIELDS = ("name", "modality", "task", "overview", "accuracy")


@dataclass(frozen=True)
class ModelCard:
    """One expert's card.

    Attributes:
        name: tag name (``"VISTA3D"``).
        modality, task, overview, accuracy: card text, verbatim.
        valid_args: arguments shown on the card; ``None`` renders as ``None`` (the expert takes no argument).
        unlisted_args: accepted arguments not shown on the card (``hepatoma``).
        default_args: argument for ``<NAME>`` / ``<NAME()>``.
        runner: module that registers the expert on import, or ``"module:factory"``; ``None``: not installed.
        bundle: where the weights come from (informational).
        source: the file the card was read from.
    """

    name: str
    modality: str
    task: str
    overview: str
    accuracy: str
    valid_args: tuple[str, ...] | None = None
    unlisted_args: tuple[str, ...] = ()
    default_args: str | None = None
    runner: str | None = None
    bundle: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def line(self) -> str:
        """The card's line in the prompt (without the newline)."""
        return (
            f"<{self.name}(args)> Modality: {self.modality}, Task: {self.task}, Overview: {self.overview}, "
            f"Accuracy: {self.accuracy}, Valid args are: {format_valid_args(self.valid_args)}"
        )

    def arg_spec(self) -> ArgSpec:
        """What the parser accepts for this expert (arguments compared lower-case)."""
        if self.valid_args is None:
            return ArgSpec(self.name, (), None)
        accepted = tuple(arg.lower() for arg in (*self.valid_args, *self.unlisted_args))
        return ArgSpec(self.name, accepted, self.default_args)


@dataclass(frozen=True)
class CardSet:
    """The cards in prompt order plus the header and footer lines."""

    cards: tuple[ModelCard, ...]
    header: str
    footer: str

    def names(self) -> list[str]:
        """Tag names in prompt order."""
        return [card.name for card in self.cards]

    def get(self, name: str) -> ModelCard | None:
        """The card named ``name`` (case-insensitive), or ``None``."""
        return next((card for card in self.cards if card.name.upper() == name.upper()), None)


def format_valid_args(valid_args: Sequence[str] | None) -> str:
    """Render the "Valid args are" field: ``None``, ``'a'``, ``'a' or 'b'``, or ``'a', 'b', or 'c'``."""
    if not valid_args:
        return "None"
    quoted = [f"'{arg}'" for arg in valid_args]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return ", ".join(quoted[:-1]) + ", or " + quoted[-1]


def _read_data_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            return json.loads(text)
        try:
            import yaml
        except ImportError:
            raise VilaM3Error(f"Card {path} is YAML but PyYAML is not installed: pip install pyyaml.") from None
        return yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as err:
        raise VilaM3Error(f"Card file {path} is not valid {path.suffix[1:].upper()}: {err}") from None
    except Exception as err:  # yaml.YAMLError, without importing yaml at module level
        raise VilaM3Error(f"Card file {path} could not be read: {err}") from None


def _card_from_data(data: Any, path: Path) -> ModelCard:
    if not isinstance(data, dict):
        raise VilaM3Error(f"Card file {path} must hold one mapping (name, modality, task, ...).")
    missing = [key for key in _REQUIRED_FIELDS if not isinstance(data.get(key), str) or not data.get(key)]
    if missing:
        raise VilaM3Error(f"Card file {path} lacks the text field(s): {', '.join(missing)}.")
    valid_args = data.get("valid_args")
    if valid_args is not None and (not isinstance(valid_args, list) or not all(isinstance(a, str) for a in valid_args)):
        raise VilaM3Error(f"Card file {path}: valid_args must be a list of strings or null.")
    default_args = data.get("default_args")
    if valid_args and default_args is None:
        raise VilaM3Error(f"Card file {path}: a card with valid_args needs default_args (used for <NAME()>).")
    return ModelCard(
        name=data["name"],
        modality=data["modality"],
        task=data["task"],
        overview=data["overview"],
        accuracy=data["accuracy"],
        valid_args=None if valid_args is None else tuple(valid_args),
        unlisted_args=tuple(data.get("unlisted_args") or ()),
        default_args=default_args,
        runner=data.get("runner"),
        bundle=dict(data.get("bundle") or {}),
        source=str(path),
    )


def _card_dirs(card_dirs: Iterable[str | os.PathLike] | None) -> list[Path]:
    if card_dirs is None:
        extra = [part for part in os.environ.get(CARD_DIRS_ENV, "").split(os.pathsep) if part]
        return [DEFAULT_CARD_DIR, *map(Path, extra)]
    return [Path(directory) for directory in card_dirs]


def load_cards(card_dirs: Iterable[str | os.PathLike] | None = None) -> CardSet:
    """Read the cards, header, footer and order from card folders.

    Args:
        card_dirs: folders with ``*.json``/``*.yaml`` cards; the first ``index.json`` found gives header, footer
            and order. Default: the repository's ``model_zoo_cards/`` plus the folders in ``$VILA_M3_CARD_DIRS``.

    Returns:
        A :class:`CardSet`: cards named in the index order first, then the others sorted by name. A later
        folder's card replaces an earlier card of the same name.
    """
    index: dict[str, Any] | None = None
    by_name: dict[str, ModelCard] = {}
    for directory in _card_dirs(card_dirs):
        if not directory.is_dir():
            raise VilaM3Error(
                f"Model card folder {directory} does not exist; pass card_dirs=[...] or set {CARD_DIRS_ENV}."
            )
        for path in sorted(directory.iterdir()):
            if path.suffix not in _CARD_SUFFIXES:
                continue
            if path.name == INDEX_FILE:
                index = index or _read_data_file(path)
                continue
            card = _card_from_data(_read_data_file(path), path)
            by_name[card.name.upper()] = card
    if index is None:
        raise VilaM3Error(f"No {INDEX_FILE} (header, footer, order) found in the card folders.")
    order = [name.upper() for name in index.get("order", [])]
    ordered = [by_name[name] for name in order if name in by_name]
    rest = sorted((card for key, card in by_name.items() if key not in order), key=lambda card: card.name)
    return CardSet(tuple(ordered + rest), header=index["header"], footer=index["footer"])


def render_model_cards(cards: CardSet | Sequence[ModelCard] | None = None) -> str:
    """The model-card text prepended to a user turn that carries an image.

    Args:
        cards: a :class:`CardSet`, a list of cards (default header and footer), or ``None`` for :func:`load_cards`.

    Returns:
        Header line, one line per card, footer line; every line ends with one ``"\\n"``.
    """
    if cards is None:
        cards = load_cards()
    if not isinstance(cards, CardSet):
        default = load_cards()
        cards = CardSet(tuple(cards), default.header, default.footer)
    lines = [cards.header, *(card.line() for card in cards.cards), cards.footer]
    return "".join(line + "\n" for line in lines)
