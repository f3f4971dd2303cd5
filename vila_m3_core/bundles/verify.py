"""Model-Zoo-style bundle verification (what ``ci/verify_bundle.py`` runs), offline.

Checks, in the Zoo's order: required files; version listed in the changelog; metadata against the local copy of
the metadata schema (through MONAI's ``verify_metadata``, which skips the download when the file exists); every
config (alone or over its base config) parses with ``ConfigParser`` and every ``@reference`` resolves to an ID;
the workflow properties of ``check_properties`` exist under the right IDs; ``verify_net_in_out`` for the
segmentation experts. Each failed check is one line in the returned report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"
SCHEMA_FILE = REPO_ROOT / "ci" / "schema" / "meta_schema_vila_m3.json"
ALL_BUNDLES = ("vila_m3_3b", "vila_m3_8b", "vila_m3_13b", "expert_cxr", "expert_vista3d", "expert_brats")
#: bundles whose network maps an image tensor to a ``pred`` tensor (checked with ``verify_net_in_out``)
SEGMENTATION_BUNDLES = {
    "expert_brats": {"overrides": {}, "extra_forward_args": None},
    "expert_vista3d": {"overrides": {"encoder_embed_dim": 8}, "extra_forward_args": "class_vector"},
}
REQUIRED_FILES = (
    "LICENSE",
    "configs/metadata.json",
    "configs/inference.json",
    "configs/logging.conf",
    "docs/README.md",
    "docs/data_license.txt",
)
#: overlay config -> the config it is merged over
OVERLAY_BASES = {
    "evaluate.json": "train.json",
    "multi_gpu_train.json": "train.json",
    "batch_inference.json": "inference.json",
}


@dataclass
class VerifyReport:
    """Problems found in one bundle (empty = passed) and what was checked."""

    bundle: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def config_sets(bundle_dir: Path) -> list[list[Path]]:
    """Config file lists to parse: each base config alone, each overlay over its base (VLM evaluate over inference)."""
    configs = sorted(p for p in (bundle_dir / "configs").glob("*.json") if p.name != "metadata.json")
    names = {p.name for p in configs}
    sets = []
    for path in configs:
        base = OVERLAY_BASES.get(path.name)
        if path.name == "evaluate.json" and "train.json" not in names:
            base = "inference.json"
        sets.append([bundle_dir / "configs" / base, path] if base else [path])
    return sets


def workflow_type(files: list[Path]) -> str:
    """``train`` for training configs and their overlays (the Zoo checks evaluate over train as train), else ``infer``."""
    return "train" if files[0].name == "train.json" else "infer"


def _parser(files: list[Path], meta: Path) -> Any:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.read_meta(str(meta))
    return parser


def unresolved_references(parser: Any) -> list[str]:
    """``@id`` references (also inside ``$`` expressions and macros' results) that point to no config ID."""
    from monai.bundle.reference_resolver import ReferenceResolver

    missing: set[str] = set()

    def walk(node: Any, node_id: str) -> None:
        for ref in ReferenceResolver.find_refs_in_config(node, node_id, refs=None):
            if ref not in parser:
                missing.add(f"{ref} (used in {node_id or '<root>'})")

    parser.parse(reset=True)
    walk(parser.get(), "")
    return sorted(missing)


def missing_properties(parser: Any, kind: str) -> list[str]:
    """Required workflow properties (``check_properties``) whose config ID is absent, without instantiating."""
    from monai.bundle.properties import InferProperties, MetaProperties, TrainProperties
    from monai.utils.enums import BundleProperty, BundlePropertyConfig

    table = {**(TrainProperties if kind == "train" else InferProperties), **MetaProperties}
    missing = []
    for name, prop in table.items():
        if not prop.get(BundleProperty.REQUIRED, False):
            continue
        prop_id = prop[BundlePropertyConfig.ID]
        if prop_id.startswith("_meta_"):
            if prop_id not in parser:
                missing.append(name)
        elif prop_id not in parser:
            missing.append(name)
    return missing


def verify_bundle(name: str, bundles_dir: Path = BUNDLES_DIR, net_check: bool = True) -> VerifyReport:
    """Run every check on ``bundles_dir/name``; see the module docstring."""
    from monai.bundle import verify_metadata, verify_net_in_out

    report = VerifyReport(name)
    bundle = Path(bundles_dir) / name
    if not bundle.is_dir():
        raise VilaM3Error(f"No bundle {name!r} in {bundles_dir}; available: {', '.join(ALL_BUNDLES)}.")
    required = list(REQUIRED_FILES) + (["large_files.yml"] if name.startswith("expert_") else [])
    report.problems += [f"missing required file {f}" for f in required if not (bundle / f).is_file()]
    report.checked.append("structure")
    meta_file = bundle / "configs" / "metadata.json"
    if not meta_file.is_file():
        return report
    meta = json.loads(meta_file.read_text())
    if meta.get("version") not in meta.get("changelog", {}):
        report.problems.append(f"version {meta.get('version')!r} is not a key of the changelog")
    report.checked.append("version")
    try:
        from vila_m3_core.bundles.large_files import file_hash

        verify_metadata(
            meta_file=str(meta_file), filepath=str(SCHEMA_FILE), hash_val=file_hash(SCHEMA_FILE), hash_type="sha256"
        )
    except Exception as err:  # jsonschema.ValidationError or a download problem
        report.problems.append(f"metadata does not match {SCHEMA_FILE.name}: {str(err).splitlines()[0]}")
    report.checked.append("metadata schema")
    if name.startswith("expert_"):
        _check_large_files(bundle, report)
    for files in config_sets(bundle):
        label = " + ".join(f.name for f in files)
        try:
            parser = _parser(files, meta_file)
        except Exception as err:
            report.problems.append(f"{label} does not parse: {err}")
            continue
        refs = unresolved_references(parser)
        report.problems += [f"{label}: unresolved reference {ref}" for ref in refs]
        if files[-1].name in ("inference.json", "train.json", "evaluate.json", "multi_gpu_train.json"):
            kind = workflow_type(files)
            report.problems += [f"{label}: missing {kind} property {p}" for p in missing_properties(parser, kind)]
        report.checked.append(f"config {label}")
    if net_check and name in SEGMENTATION_BUNDLES:
        spec = SEGMENTATION_BUNDLES[name]
        extra = None
        if spec["extra_forward_args"] == "class_vector":
            import torch

            extra = {"class_vector": torch.tensor([[1]])}
        try:
            verify_net_in_out(
                net_id="network_def",
                meta_file=str(meta_file),
                config_file=str(bundle / "configs" / "inference.json"),
                device="cpu",
                extra_forward_args=extra,
                **spec["overrides"],
            )
        except Exception as err:
            report.problems.append(f"verify_net_in_out failed: {err}")
        report.checked.append("network in/out")
    return report


def _check_large_files(bundle: Path, report: VerifyReport) -> None:
    """Every ``large_files.yml`` entry has a path inside the bundle, an https URL and a stated hash type."""
    from monai.bundle import ConfigParser

    entries = ConfigParser.load_config_file(str(bundle / "large_files.yml")).get("large_files", [])
    if not entries:
        report.problems.append("large_files.yml lists no files")
    for entry in entries:
        path = str(entry.get("path", ""))
        if not path or path.startswith("/") or ".." in Path(path).parts:
            report.problems.append(f"large_files.yml: bad path {path!r}")
        if not str(entry.get("url", "")).startswith(("https://", "http://")):
            report.problems.append(f"large_files.yml: {path} has no http(s) url")
        if entry.get("hash_type") not in ("md5", "sha1", "sha256", "sha512"):
            report.problems.append(f"large_files.yml: {path} states no hash_type")
    report.checked.append("large_files.yml")
