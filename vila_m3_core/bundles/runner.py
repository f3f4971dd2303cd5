"""Run a bundle through ``python -m monai.bundle run`` (or ``torchrun``) in a subprocess, as users do.

Used by ``ci/run_bundle_tests.py`` and the bundle tests: the command line is built here once, with the repository
on ``PYTHONPATH`` so that configs can import :mod:`vila_m3_core` from a source checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"


@dataclass
class BundleRun:
    """Outcome of one subprocess run: the command, exit code, combined output and wall time (seconds)."""

    command: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def tracking_safe(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides with a literal ``output_dir`` rewritten as an expression.

    MONAI 1.6.1's ``patch_bundle_tracking`` builds the executed-config artifact path as the text
    ``<output_dir> + '/config_<time>.json'``; with a literal CLI ``--output_dir /x`` that text is not an expression,
    so MLflow never receives the config. ``$'/x'`` keeps the same value and makes the concatenation valid.
    """
    fixed = dict(overrides)
    value = fixed.get("output_dir")
    if isinstance(value, str) and not value.startswith(("$", "@", "%")):
        fixed["output_dir"] = "$" + repr(value)
    return fixed


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """``{"epochs": 1, "roi_size": [32, 32, 32]}`` -> ``["--epochs", "1", "--roi_size", "[32, 32, 32]"]``.

    Strings are passed as typed (Fire parses them); other values as their ``repr`` so that Fire reads them back.
    """
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return args


def bundle_command(
    config_files: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    nproc: int = 0,
    tracking: str | None = None,
) -> list[str]:
    """The ``monai.bundle run`` command (``torchrun --nproc_per_node=nproc`` when ``nproc`` > 0)."""
    files = config_files[0] if len(config_files) == 1 else repr(list(config_files))
    launcher = [sys.executable, "-m"]
    if nproc:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc_per_node={nproc}",
            "-m",
        ]
    command = [*launcher, "monai.bundle", "run", "--config_file", files, *override_args(overrides or {})]
    if tracking:
        command += ["--tracking", tracking]
    return command


def run_bundle(
    bundle: str,
    config_files: Sequence[str] = ("configs/inference.json",),
    overrides: Mapping[str, Any] | None = None,
    nproc: int = 0,
    tracking: str | None = None,
    timeout: float = 600,
    bundles_dir: str | Path = BUNDLES_DIR,
    env: Mapping[str, str] | None = None,
) -> BundleRun:
    """Run ``bundle`` from its folder (as the README shows) and return the outcome; never raises on failure."""
    cwd = Path(bundles_dir) / bundle
    if tracking:
        overrides = tracking_safe(overrides or {})
    command = bundle_command(config_files, overrides, nproc, tracking)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH", "")]))
    environment.setdefault("OMP_NUM_THREADS", "2")
    environment.update(env or {})
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
        return BundleRun(command, done.returncode, done.stdout + done.stderr, time.perf_counter() - start)
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return BundleRun(command, -9, output + f"\nTIMEOUT after {timeout} s", time.perf_counter() - start)


def missing_workflow_properties(
    bundle: str,
    config_files: Sequence[str] = ("configs/inference.json",),
    overrides: Mapping[str, Any] | None = None,
    bundles_dir: str | Path = BUNDLES_DIR,
) -> list[str]:
    """MONAI's own ``check_properties`` on the initialised workflow (what the Zoo's unit tests assert is empty).

    The workflow type is ``train`` when the first config is ``train.json`` (evaluate overlays included, as the Zoo
    does), else ``infer``. Runs in this process; the overrides are those of the matching subprocess run.
    """
    workflow = bundle_workflow(bundle, config_files, overrides, bundles_dir)
    workflow.initialize()
    return list(workflow.check_properties() or [])


def bundle_workflow(
    bundle: str,
    config_files: Sequence[str] = ("configs/inference.json",),
    overrides: Mapping[str, Any] | None = None,
    bundles_dir: str | Path = BUNDLES_DIR,
) -> Any:
    """``bundle`` as a MONAI ``ConfigWorkflow`` in this process, not initialised yet (``bundle_root`` set; workflow
    type ``train`` when the first config is ``train.json``, else ``infer``)."""
    from monai.bundle import ConfigWorkflow

    root = Path(bundles_dir) / bundle
    files = [str(root / f) for f in config_files]
    kind = "train" if Path(files[0]).name == "train.json" else "infer"
    return ConfigWorkflow(
        config_file=files, workflow_type=kind, logging_file=False, **{"bundle_root": str(root), **(overrides or {})}
    )
