"""The ``vila-m3 bundle`` verb: run, verify, package, fetch weights of and test the bundles in ``bundles/``.

``vila-m3 bundle run <name> [--config train] --key value ...`` is ``python -m monai.bundle run`` from the bundle
folder, with the overrides checked first and a user error printed as one line instead of MONAI's chained traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

ACTIONS = ("run", "verify", "package", "download_weights", "test", "pin_hashes")


def run(name: str, config: str | list[str] = "inference", bundles_dir: str | None = None, **overrides: Any) -> None:
    """Run bundle ``name`` with ``configs/<config>.json`` (a list merges overlays, e.g. ``[train,evaluate]``)."""
    from monai.bundle import run as monai_run

    from vila_m3_core.bundle_config import user_error_in
    from vila_m3_core.bundles.overrides import check_cli_overrides
    from vila_m3_core.bundles.runner import BUNDLES_DIR

    bundle = Path(bundles_dir or BUNDLES_DIR) / name
    names = [config] if isinstance(config, str) else list(config)
    files = [str(bundle / "configs" / (c if c.endswith(".json") else f"{c}.json")) for c in names]
    for file in files:
        if not Path(file).is_file():
            raise VilaM3Error(
                f"{file} not found; bundle configs: {sorted(p.stem for p in (bundle / 'configs').glob('*.json'))}."
            )
    argv = ["monai/bundle/__main__.py", "run", "--config_file", repr(files)]
    for key in overrides:
        argv += [f"--{key}", "x"]
    check_cli_overrides(argv)
    overrides.setdefault("bundle_root", str(bundle))
    if overrides.get("tracking"):
        from vila_m3_core.bundles.runner import tracking_safe

        overrides = tracking_safe(overrides)
    try:
        monai_run(config_file=files, **overrides)
    except Exception as err:
        user_error = user_error_in(err)
        if user_error is not None:
            raise user_error from None
        raise


def bundle(action: str, *names: str, **kwargs: Any) -> Any:
    """``vila-m3 bundle <action> ...``: ``run <name> --key value``, ``verify [names]`` (default all),
    ``package [names] --base_url URL [--out_dir dist/bundles]``, ``download_weights <name>``, ``pin_hashes <name>``,
    ``test [names]`` (the CPU end-to-end runs of ``ci/run_bundle_tests.py``)."""
    from vila_m3_core.bundles.verify import ALL_BUNDLES, BUNDLES_DIR, verify_bundle

    if action not in ACTIONS:
        raise VilaM3Error(f"Unknown bundle action {action!r}; use one of: {', '.join(ACTIONS)}.")
    if action == "run":
        if len(names) != 1:
            raise VilaM3Error("Usage: vila-m3 bundle run <bundle name> [--config train] --key value ...")
        return run(names[0], **kwargs)
    selected = list(names) or list(ALL_BUNDLES)
    if action == "verify":
        failed = []
        for name in selected:
            report = verify_bundle(name, net_check=kwargs.get("net_check", True))
            print(f"{'ok  ' if report.ok else 'FAIL'} {name}")
            for problem in report.problems:
                print(f"     - {problem}")
            if not report.ok:
                failed.append(name)
        if failed:
            raise VilaM3Error(f"Bundle verification failed: {', '.join(failed)}.")
        return None
    if action == "package":
        from vila_m3_core.bundles.packaging import package_bundle, write_model_info

        if "base_url" not in kwargs:
            raise VilaM3Error("Give --base_url, the URL the zips will be published under.")
        out_dir = Path(kwargs.get("out_dir", "dist/bundles"))
        archives = [package_bundle(BUNDLES_DIR / name, out_dir) for name in selected]
        write_model_info(archives, out_dir / "model_info.json", kwargs["base_url"])
        for archive in archives:
            print(archive)
        return None
    if action == "download_weights":
        from monai.bundle import download_large_files

        for name in names or ("expert_cxr", "expert_vista3d", "expert_brats"):
            download_large_files(bundle_path=str(BUNDLES_DIR / name))
        return None
    if action == "pin_hashes":
        from vila_m3_core.bundles.large_files import pin_hashes

        for name in names:
            for path in pin_hashes(BUNDLES_DIR / name):
                print(f"pinned {name}/{path}")
        return None
    import runpy
    import sys

    sys.argv = ["run_bundle_tests.py", *names]
    runpy.run_path(str(BUNDLES_DIR.parent / "ci" / "run_bundle_tests.py"), run_name="__main__")
    return None
