"""Expert models, their cards, the call parser and the 3D-to-2D rendering.

Importing this package is cheap: only the interface (:mod:`.base`) is imported eagerly. Submodules with heavy
dependencies (torch, MONAI, torchxrayvision: :mod:`.cxr`, :mod:`.vista3d`, :mod:`.brats`, :mod:`.rendering`)
load on first attribute access (``vila_m3_core.experts.cxr``) or import.
"""

from __future__ import annotations

import importlib
from typing import Any

from vila_m3_core.experts.base import (
    Expert,
    ExpertRequest,
    ExpertResult,
    available_experts,
    create_expert,
    register_expert,
)

_LAZY_SUBMODULES = ("cards", "parsing", "feedback", "labels", "rendering", "cxr", "vista3d", "brats")
# Light helpers re-exported lazily, by owning submodule.
_LAZY_NAMES = {
    "load_cards": "cards",
    "render_model_cards": "cards",
    "ModelCard": "cards",
    "CardSet": "cards",
    "parse_expert_call": "parsing",
    "ParseResult": "parsing",
    "ParseStatus": "parsing",
    "ExpertCall": "parsing",
}

__all__ = [
    "Expert",
    "ExpertRequest",
    "ExpertResult",
    "available_experts",
    "create_expert",
    "register_expert",
    *_LAZY_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
