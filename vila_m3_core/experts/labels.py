"""Label data of the experts, read from ``vila_m3_core/experts/data/`` (the data files are the source of truth).

- ``label_groups_dict.json``: the reference's VISTA3D label groups (byte-identical copy; key order matters).
- ``vista3d_labels.json``: the 133 VISTA3D class names (0 = background .. 132 = airway), the 117 default
  "everything" labels, and the superclass expansion of the bundle (kidney 2, lung 20, bone 21).
- ``palette.json``: a stable colour name per label id (VISTA3D and BraTS) and the reference's 16-colour tuple.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from vila_m3_core.errors import VilaM3Error

#: The reserved group name meaning "segment the 117 default classes".
EVERYTHING = "everything"
#: The BraTS output label values and their meaning (1 = necrotic/non-enhancing core, 2 = oedema, 4 = enhancing).
BRATS_LABEL_NAMES: dict[int, str] = {1: "necrotic tumor core", 2: "peritumoral edema", 4: "enhancing tumor"}


@cache
def _data(name: str) -> Any:
    return json.loads(resources.files("vila_m3_core.experts").joinpath("data", name).read_text(encoding="utf-8"))


def label_groups() -> dict[str, Any]:
    """The reference ``label_groups_dict.json``: group name -> {label name: VISTA3D id} (``everything`` -> a path)."""
    return _data("label_groups_dict.json")


def group_names() -> list[str]:
    """Accepted VISTA3D arguments, in file order (``everything`` first; ``hepatoma`` is accepted, not on the card)."""
    return list(label_groups())


def vista3d_label_names() -> dict[int, str]:
    """VISTA3D class id -> name for ids 0..132 (0 = background)."""
    return {int(k): v for k, v in _data("vista3d_labels.json")["labels"].items()}


def everything_labels() -> list[int]:
    """The 117 class ids the bundle segments when no prompt is given (1..132 minus superclasses and tumours)."""
    return list(_data("vista3d_labels.json")["everything_labels"])


def vista3d_subclasses() -> dict[int, list[int]]:
    """Superclass -> subclasses expansion of the bundle: kidney 2 -> [14, 5], lung 20 -> lobes, bone 21 -> bones."""
    return {int(k): list(v) for k, v in _data("vista3d_labels.json")["subclass"].items()}


def vista3d_label_name(label_id: int) -> str:
    """Name of a VISTA3D id: the first group (in file order) that lists it, as the reference; else the bundle name."""
    for group in label_groups().values():
        if isinstance(group, dict):
            for name, group_id in group.items():
                if group_id == label_id:
                    return name
    try:
        return vista3d_label_names()[int(label_id)]
    except KeyError:
        raise VilaM3Error(f"VISTA3D has no label id {label_id}; valid ids are 1..132.") from None


def normalise_group_name(arg: str | None) -> str:
    """Map a tag argument to a group name: ``None``/empty -> ``everything``; tolerant of case, spaces and quotes.

    Raises:
        VilaM3Error: when the argument is not a known group (the message lists the accepted groups).
    """
    if arg is None:
        return EVERYTHING
    cleaned = " ".join(arg.strip().strip("'\"`").split()).lower()
    if cleaned == "":
        return EVERYTHING
    for name in group_names():
        if name.lower() == cleaned:
            return name
    raise VilaM3Error(
        f"Label group {arg!r} is not accepted by the VISTA3D model; use one of: {', '.join(group_names())}."
    )


def group_label_ids(group: str) -> list[int]:
    """The VISTA3D ids of a group in file order (``everything`` -> the 117 default labels)."""
    name = normalise_group_name(group)
    if name == EVERYTHING:
        return everything_labels()
    return list(label_groups()[name].values())


def expand_label_prompt(label_ids: list[int]) -> list[int]:
    """Expand superclasses (kidney, lung, bone) into their subclasses as the bundle does, dropping repeats.

    The bundle kept repeats (``lung tumor`` = lung 20 + lobes 28-32 gives every lobe twice), which only costs
    compute: the duplicate channel can never win the argmax. Order of first appearance is kept.
    """
    subclasses = vista3d_subclasses()
    expanded: list[int] = []
    for label_id in label_ids:
        for sub in subclasses.get(int(label_id), [int(label_id)]):
            if sub not in expanded:
                expanded.append(sub)
    return expanded


def palette(kind: str) -> dict[int, str]:
    """Stable label id -> colour name (skimage colour names) for ``kind`` in ``{"vista3d", "brats"}``."""
    return {int(k): v for k, v in _data("palette.json")[kind].items()}


def reference_colours() -> list[str]:
    """The reference's 16-colour tuple that ``label2rgb`` cycled through per slice ("orange" appears twice)."""
    return list(_data("palette.json")["reference_colors"])
