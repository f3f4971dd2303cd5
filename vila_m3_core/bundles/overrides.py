"""Refuse bundle config overrides whose key does not exist, instead of silently adding an unused key.

``python -m monai.bundle run --imgae x`` would add a new top-level ``imgae`` and run without the image; nested keys
with a missing parent fail with a bare ``KeyError``. The bundle configs call :func:`check_cli_overrides` first in
``initialize``; it reads the overrides from the ``monai.bundle`` command line and names the closest real key.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from vila_m3_core.bundle_config import RUN_ARGUMENTS, check_override_keys
from vila_m3_core.errors import VilaM3Error

__all__ = ["RUN_ARGUMENTS", "check_cli_overrides", "check_override_keys"]


def _run_arguments(argv: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` pairs of a ``monai.bundle run`` command line (values as typed)."""
    args: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--") and len(arg) > 2:
            if "=" in arg:
                key, value = arg[2:].split("=", 1)
            else:
                key = arg[2:]
                value = argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("--") else ""
                index += 1 if value else 0
            args[key] = value
        index += 1
    return args


def _config_files(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        import ast

        return [str(v) for v in ast.literal_eval(value)]
    return [part.strip() for part in value.split(",") if part.strip()]


def _has_path(config: Any, parts: list[str]) -> bool:
    node = config
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_cli_overrides(argv: list[str] | None = None) -> bool:
    """Check the ``--key`` overrides of the running ``python -m monai.bundle run`` against its config files.

    Called first in every bundle's ``initialize``. Outside ``monai.bundle run`` (e.g. ``ConfigWorkflow`` in
    Python) there is no command line to check and it returns True.

    Raises:
        VilaM3Error: an override whose top-level key is in none of the config files, or a nested key whose parent
            does not exist; the message suggests the closest keys.
    """
    argv = list(sys.argv if argv is None else argv)
    if not argv or "monai/bundle" not in argv[0].replace("\\", "/") or "run" not in argv[1:3]:
        return True
    args = _run_arguments(argv[1:])
    if "config_file" not in args:
        return True
    from monai.bundle import ConfigParser

    merged: dict[str, Any] = {}
    for file in _config_files(args["config_file"]):
        for key, value in ConfigParser.load_config_file(file).items():
            key = str(key).lstrip("+").replace("::", "#")
            if "#" in key:
                parent, _, leaf = key.rpartition("#")
                node = merged
                for part in parent.split("#"):
                    node = node.setdefault(part, {}) if isinstance(node, dict) else {}
                if isinstance(node, dict):
                    node[leaf] = value
            else:
                merged[key] = value
    for key in args:
        parts = key.replace("::", "#").split("#")
        if parts[0] in RUN_ARGUMENTS or key.startswith("+") or _has_path(merged, parts):
            continue
        if len(parts) > 1 and _has_path(merged, parts[:-1]):
            continue  # a new key under an existing parent is allowed by MONAI (e.g. a handler argument)
        close = difflib.get_close_matches(parts[0], sorted(merged), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise VilaM3Error(
            f"Unknown config key --{key} (not in {args['config_file']}).{hint} "
            f"Known top-level keys: {', '.join(k for k in sorted(merged) if not k.startswith('_'))}."
        )
    return True
