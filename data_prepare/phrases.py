"""Phrasing banks stored as data files under ``data_prepare/phrases/``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PHRASES_DIR = Path(__file__).parent / "phrases"


@cache
def load_phrases(name: str) -> Any:
    """The decoded content of ``phrases/<name>.json``."""
    return json.loads((PHRASES_DIR / f"{name}.json").read_text(encoding="utf-8"))
