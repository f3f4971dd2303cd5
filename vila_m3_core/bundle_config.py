"""Reading a MONAI bundle config from Python with checked overrides.

Used by the experts (their pipeline is defined once, in their bundle's ``configs/inference.json``) and by the
bundle workflows; it sits at the bottom layer so that both can import it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

#: arguments of ``monai.bundle run`` / ``ConfigWorkflow`` itself, and the tracking settings patched in by MONAI
RUN_ARGUMENTS = frozenset(
    {
        "run_id",
        "init_id",
        "final_id",
        "meta_file",
        "config_file",
        "logging_file",
        "tracking",
        "args_file",
        "workflow_type",
        "properties_path",
        "workflow_name",
        "tracking_uri",
        "experiment_name",
        "run_name",
        "save_execute_config",
        "is_not_rank0",
        "output_dir",
        "bundle_root",
    }
)


def _exists(parser: Any, key: str) -> bool:
    try:
        parser[key]
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True


def check_override_keys(parser: Any, overrides: Mapping[str, Any] | Iterable[str], where: str = "the config") -> None:
    """Raise :class:`VilaM3Error` for override keys that are not in ``parser`` (closest keys suggested)."""
    top_level = [k for k in parser.get().keys() if not str(k).startswith("_")] if hasattr(parser, "get") else []
    for key in overrides:
        key = str(key).replace("#", "::")
        if key in RUN_ARGUMENTS or key.startswith("+") or _exists(parser, key):
            continue
        close = difflib.get_close_matches(key.split("::")[-1], top_level, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise VilaM3Error(
            f"Unknown config key {key!r} for {where}.{hint} Known top-level keys: {', '.join(top_level)}."
        )


def read_bundle_config(
    bundle_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    config_name: str = "inference.json",
    bundle_root: str | Path | None = None,
) -> Any:
    """A ``ConfigParser`` over ``<bundle_dir>/configs/<config_name>`` (and its metadata), overrides applied.

    Args:
        bundle_dir: the bundle folder whose config is read.
        overrides: config keys to replace (``{"patch_size": [64, 64, 64]}``, ``{"inferer#overlap": 0.5}``);
            a key the config does not have is refused with the closest existing keys.
        device: ``"auto"``, ``"cpu"``, ``"cuda:1"``...; sets the config's ``device`` item (``None``: keep it).
        config_name: file under ``configs/``.
        bundle_root: value of ``bundle_root`` (where ``models/`` lives); defaults to ``bundle_dir``.

    Raises:
        VilaM3Error: missing config file or unknown override key.
    """
    from monai.bundle import ConfigParser

    from vila_m3_core.devices import resolve_device

    bundle_dir = Path(bundle_dir)
    config_file = bundle_dir / "configs" / config_name
    if not config_file.is_file():
        raise VilaM3Error(
            f"Bundle config {config_file} not found: point bundle_dir at a bundle folder (download one with "
            "`python -m monai.bundle download`, or use this repository's bundles/)."
        )
    parser = ConfigParser()
    parser.read_config(str(config_file))
    if (bundle_dir / "configs" / "metadata.json").is_file():
        parser.read_meta(str(bundle_dir / "configs" / "metadata.json"))
    overrides = dict(overrides or {})
    check_override_keys(parser, overrides, str(config_file))
    parser["bundle_root"] = str(bundle_root if bundle_root is not None else bundle_dir)
    if device is not None:
        parser["device"] = f"$torch.device('{resolve_device(device)}')"
    for key, value in overrides.items():
        parser[key] = value
    return parser


def user_error_in(err: BaseException | None) -> VilaM3Error | None:
    """The :class:`VilaM3Error` inside MONAI's ``RuntimeError: Failed to instantiate/evaluate ...`` chain, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, VilaM3Error):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def parsed_item(parser: Any, item: str, where: str | Path = "the bundle config") -> Any:
    """``parser.get_parsed_content(item)``; a missing ``item`` is a :class:`VilaM3Error` naming ``where``, and a user
    error raised inside a component is re-raised as itself."""
    if item not in parser:
        raise VilaM3Error(f"{where} defines no {item!r} item.")
    try:
        return parser.get_parsed_content(item, lazy=False)
    except Exception as err:
        user_error = user_error_in(err)
        if user_error is not None:
            raise user_error from None
        raise
