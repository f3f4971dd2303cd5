"""The ``mixture`` verb: a training-mixture manifest (dataset name -> record file, image root, repeat count).

VILA concatenates a ``+``-joined list of registered dataset names and upsamples by repeating a name; the manifest
records the same information explicitly and also gives the ``data_mixture`` string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_prepare.inputs import read_json
from data_prepare.validate import validate_records
from vila_m3_core.errors import VilaM3Error

#: the reference's repeat counts (m3/train/m3-vila{3b,8b,13b}.sh; 50 entries in all)
REFERENCE_REPEATS: dict[str, int] = {
    "usmle": 10,
    "radvqa": 4,
    "slake": 4,
    "pathvqa": 4,
    "expert_mimic_vqa": 2,
    "expert_vista3d": 8,
    "expert_brats": 16,
    "mimic_report_dcl_train_update0_clean": 1,
    "mimic_report_expert_dcl_train_update0_clean": 1,
}
#: short names accepted for the two report datasets
ALIASES = {
    "mimic_report": "mimic_report_dcl_train_update0_clean",
    "mimic_report_expert": "mimic_report_expert_dcl_train_update0_clean",
}


def _entries(datasets: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(datasets, str):
        datasets = read_json(datasets, "mixture specification JSON")
    if not isinstance(datasets, dict) or not datasets:
        raise VilaM3Error('--datasets must map names to {"records": path, "image_root": path, "repeat": n}')
    return datasets


def write_mixture(output: str, datasets: dict[str, Any] | str, check: bool = True) -> dict[str, Any]:
    """Write the mixture manifest JSON.

    Args:
        output: manifest path (``.json``).
        datasets: ``{name: {"records": path, "image_root": path, "repeat": n}}`` or a JSON file holding it;
            ``repeat`` defaults to the reference count for the known names (:data:`REFERENCE_REPEATS`).
        check: validate every record file (schema, placeholders, unique ids), check that image roots exist, and
            count the records.

    Returns:
        The manifest.
    """
    manifest: list[dict[str, Any]] = []
    for raw_name, entry in _entries(datasets).items():
        name = ALIASES.get(raw_name, raw_name)
        entry = {"records": entry} if isinstance(entry, str) else dict(entry)
        if "records" not in entry:
            raise VilaM3Error(f"mixture entry {raw_name!r} needs a 'records' path")
        repeat = entry.get("repeat", REFERENCE_REPEATS.get(name))
        if repeat is None:
            raise VilaM3Error(f"mixture entry {raw_name!r} is not a reference dataset: give its 'repeat' count")
        if not isinstance(repeat, int) or repeat < 1:
            raise VilaM3Error(f"mixture entry {raw_name!r}: repeat must be a positive integer, not {repeat!r}")
        item = {"name": name, "records": str(entry["records"]), "image_root": entry.get("image_root"), "repeat": repeat}
        if check:
            if item["image_root"] is not None and not Path(item["image_root"]).is_dir():
                raise VilaM3Error(f"mixture entry {raw_name!r}: image_root {item['image_root']} is not a folder")
            summary = validate_records(item["records"])
            if summary["invalid"]:
                raise VilaM3Error(
                    f"mixture entry {raw_name!r}: {summary['invalid']} invalid record(s) in "
                    f"{item['records']} ({summary['problems']}); run the validate verb on it"
                )
            item["n_records"] = summary["valid"]
        manifest.append(item)
    result = {
        "datasets": manifest,
        "data_mixture": "+".join("+".join([m["name"]] * m["repeat"]) for m in manifest),
        "entries": sum(m["repeat"] for m in manifest),
    }
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
