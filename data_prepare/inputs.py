"""Reading raw dataset files with clear errors: missing files, malformed JSON, missing CSV columns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pandas as pd

from vila_m3_core.errors import VilaM3Error


def require_path(path: str | Path | None, what: str, folder: bool = False) -> Path:
    """``path`` as a ``Path`` after checking it exists (a folder when ``folder``), else a ``VilaM3Error``."""
    if path is None or str(path) == "":
        raise VilaM3Error(f"missing {what}: pass its path")
    path = Path(path).expanduser()
    if folder and not path.is_dir():
        raise VilaM3Error(f"{what} {path} is not a folder")
    if not folder and not path.is_file():
        raise VilaM3Error(f"{what} {path} does not exist (or is not a file)")
    return path


def read_json(path: str | Path, what: str) -> Any:
    """Decode a JSON file, turning a missing file or a syntax error into a ``VilaM3Error`` naming ``what``."""
    path = require_path(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VilaM3Error(f"{what} {path} is not valid JSON ({err}); re-download or fix the file") from err


def read_json_list(path: str | Path, what: str) -> list[Any]:
    """A JSON file that must hold a list."""
    data = read_json(path, what)
    if not isinstance(data, list):
        raise VilaM3Error(f"{what} {path} must hold a JSON list, found {type(data).__name__}")
    return data


def read_csv(path: str | Path, what: str, required: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV (optionally compressed) as strings and check that the ``required`` columns exist by name.

    Empty cells become ``""`` so that no value is silently turned into NaN.
    """
    path = require_path(path, what)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise VilaM3Error(f"{what} {path} could not be read as CSV ({err})") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise VilaM3Error(f"{what} {path} lacks the column(s) {missing}; found {list(frame.columns)}")
    return frame


def shipped_data_file(name: str) -> Path:
    """A data file shipped inside the ``torchxrayvision`` package (``torchxrayvision/data/<name>``), found without
    importing the package (which would import torch)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise VilaM3Error(f"{name} ships with torchxrayvision: pip install torchxrayvision, or pass --input")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name
