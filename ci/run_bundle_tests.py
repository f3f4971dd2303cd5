#!/usr/bin/env python
"""Run every bundle end to end on CPU through ``python -m monai.bundle run`` (subprocesses), on tiny synthetic data
with tiny random weights of the real architectures: inference, train (1 epoch, 2 iterations) and evaluate for the
expert bundles, inference (+ batch inference, MLflow tracking) for the VILA-M3 bundles, and the multi-GPU overlay
with ``torchrun --nproc_per_node=2`` on CPU (gloo) for each expert bundle. Before each single-process run, MONAI's ``check_properties``
must return no missing property for the initialised workflow.

    python ci/run_bundle_tests.py            # all bundles
    python ci/run_bundle_tests.py expert_brats vila_m3_8b --keep /tmp/bundle_runs

Exit status 1 if any run fails; each failure prints the tail of its output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vila_m3_core.bundles import synthetic  # noqa: E402
from vila_m3_core.bundles.runner import BundleRun, missing_workflow_properties, run_bundle  # noqa: E402

Check = Callable[[Path], str | None]


def _exists(*parts: str) -> Check:
    def check(work: Path) -> str | None:
        path = work.joinpath(*parts)
        return None if path.exists() else f"expected output {path} is missing"

    return check


def _mlflow_logged(db: str, metrics: tuple[str, ...]) -> Check:
    """The MLflow store at ``work/<db>`` has a finished run with params, these metrics and the executed config."""

    def check(work: Path) -> str | None:
        from mlflow.tracking import MlflowClient

        path = work / db
        if not path.is_file():
            return f"no MLflow store at {path}"
        client = MlflowClient(tracking_uri=f"sqlite:///{path}")
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        if not runs:
            return f"no MLflow run in {path}"
        run = runs[0]
        missing = [m for m in metrics if m not in run.data.metrics]
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        if missing or not run.data.params or not any(a.startswith("config_") for a in artifacts):
            return f"MLflow run incomplete: params {run.data.params}, metrics {sorted(run.data.metrics)}, {artifacts}"
        return None

    return check


def plan(work: Path) -> list[tuple[str, str, dict, Check | None]]:
    """(name, bundle, run_bundle kwargs, output check) for every run; builds the synthetic inputs under ``work``."""
    data = work / "data"
    brats = synthetic.write_brats_dataset(data / "brats")
    ct = synthetic.write_ct_dataset(data / "ct")
    cxr = synthetic.write_cxr_dataset(data / "cxr")
    brats_images = json.loads(brats.read_text())["validation"][0]["image"]
    ct_image = json.loads(ct.read_text())["validation"][0]["image"]
    weights = work / "weights"
    brats_ckpt = synthetic.write_brats_weights(weights / "brats" / "model.pt")
    vista_ckpt = synthetic.write_vista3d_weights(weights / "vista3d" / "model.pt", encoder_embed_dim=8)
    xrv_dir = synthetic.write_xrv_weights(weights / "xrv")
    from vila_m3_core.model import build_tiny_checkpoint

    vicuna = build_tiny_checkpoint(weights / "tiny-vicuna", flavor="vicuna")
    llama3 = build_tiny_checkpoint(weights / "tiny-llama3", flavor="llama3")
    requests = synthetic.write_requests(data / "vlm" / "requests.jsonl", str(cxr / "cxr0.png"))
    out = work / "out"
    fast_brats = {"roi_size": [32, 32, 32], "val_roi_size": [32, 32, 32], "num_workers": 0}
    fast_vista = {"encoder_embed_dim": 8, "patch_size": [32, 32, 32], "num_workers": 0, "finetune": False}
    fast_cxr = {
        "pretrained_weights": "random",
        "growth_rate": 4,
        "block_config": [1, 1, 1, 1],
        "batch_size": 2,
        "num_workers": 0,
    }
    train_cfg = ("configs/train.json",)
    eval_cfg = ("configs/train.json", "configs/evaluate.json")
    mgpu_cfg = ("configs/train.json", "configs/multi_gpu_train.json")
    one_epoch = {"epochs": 1, "iterations_per_epoch": 2}
    expert_overrides = {
        "expert_cxr": {"weights_dir": str(xrv_dir)},
        "expert_vista3d": {"ckpt_path": str(vista_ckpt), "encoder_embed_dim": 8, "patch_size": [32, 32, 32]},
        "expert_brats": {"ckpt_path": str(brats_ckpt), "roi_size": [32, 32, 32]},
    }
    runs: list[tuple[str, str, dict, Check | None]] = [
        (
            "brats inference",
            "expert_brats",
            {
                "overrides": {
                    "image": brats_images,
                    "ckpt_path": str(brats_ckpt),
                    "roi_size": [32, 32, 32],
                    "output_dir": str(out / "brats_infer"),
                }
            },
            _exists("out", "brats_infer", "case2_t1ce_seg.nii.gz"),
        ),
        (
            "brats train + mlflow",
            "expert_brats",
            {
                "config_files": train_cfg,
                "tracking": "mlflow",
                "overrides": {
                    **fast_brats,
                    **one_epoch,
                    "dataset_dir": str(brats.parent),
                    "ckpt_dir": str(out / "brats_train"),
                    "output_dir": str(out / "brats_train"),
                },
            },
            _mlflow_logged("out/brats_train/mlruns.db", ("train_loss", "val_mean_dice")),
        ),
        (
            "brats evaluate",
            "expert_brats",
            {
                "config_files": eval_cfg,
                "overrides": {
                    **fast_brats,
                    "dataset_dir": str(brats.parent),
                    "ckpt_dir": str(out / "brats_train"),
                    "output_dir": str(out / "brats_eval"),
                },
            },
            _exists("out", "brats_eval", "metrics.csv"),
        ),
        (
            "brats multi-GPU overlay (torchrun, 2 CPU procs)",
            "expert_brats",
            {
                "config_files": mgpu_cfg,
                "nproc": 2,
                "overrides": {
                    **fast_brats,
                    **one_epoch,
                    "iterations_per_epoch": 1,
                    "dataset_dir": str(brats.parent),
                    "ckpt_dir": str(out / "brats_mgpu"),
                    "output_dir": str(out / "brats_mgpu"),
                },
            },
            _exists("out", "brats_mgpu", "model.pt"),
        ),
        (
            "vista3d inference",
            "expert_vista3d",
            {
                "overrides": {
                    "image": ct_image,
                    "label_prompt": "liver,spleen",
                    "ckpt_path": str(vista_ckpt),
                    "encoder_embed_dim": 8,
                    "patch_size": [32, 32, 32],
                    "output_dir": str(out / "vista_infer"),
                }
            },
            _exists("out", "vista_infer", "ct2_seg.nii.gz"),
        ),
        (
            "vista3d train",
            "expert_vista3d",
            {
                "config_files": train_cfg,
                "overrides": {
                    **fast_vista,
                    **one_epoch,
                    "dataset_dir": str(ct.parent),
                    "ckpt_dir": str(out / "vista_train"),
                    "output_dir": str(out / "vista_train"),
                },
            },
            _exists("out", "vista_train", "model.pt"),
        ),
        (
            "vista3d evaluate",
            "expert_vista3d",
            {
                "config_files": eval_cfg,
                "overrides": {
                    **fast_vista,
                    "dataset_dir": str(ct.parent),
                    "ckpt_dir": str(out / "vista_train"),
                    "output_dir": str(out / "vista_eval"),
                },
            },
            _exists("out", "vista_eval", "metrics.csv"),
        ),
        (
            "cxr inference",
            "expert_cxr",
            {
                "overrides": {
                    "image": str(cxr / "cxr0.png"),
                    "weights_dir": str(xrv_dir),
                    "output_dir": str(out / "cxr_infer"),
                }
            },
            _exists("out", "cxr_infer", "cxr0_cxr.json"),
        ),
        (
            "cxr train",
            "expert_cxr",
            {
                "config_files": train_cfg,
                "overrides": {
                    **fast_cxr,
                    **one_epoch,
                    "dataset_dir": str(cxr),
                    "ckpt_dir": str(out / "cxr_train"),
                    "output_dir": str(out / "cxr_train"),
                },
            },
            _exists("out", "cxr_train", "model_finetuned.pt"),
        ),
        (
            "cxr evaluate",
            "expert_cxr",
            {
                "config_files": eval_cfg,
                "overrides": {
                    **fast_cxr,
                    "dataset_dir": str(cxr),
                    "ckpt_dir": str(out / "cxr_train"),
                    "output_dir": str(out / "cxr_eval"),
                },
            },
            _exists("out", "cxr_eval", "metrics.csv"),
        ),
    ]
    for bundle, fast, dataset, label in (
        ("expert_vista3d", fast_vista, ct.parent, "vista3d"),
        ("expert_cxr", fast_cxr, cxr, "cxr"),
    ):
        runs.append(
            (
                f"{label} multi-GPU overlay (torchrun, 2 CPU procs)",
                bundle,
                {
                    "config_files": mgpu_cfg,
                    "nproc": 2,
                    "overrides": {
                        **fast,
                        "epochs": 1,
                        "iterations_per_epoch": 1,
                        "dataset_dir": str(dataset),
                        "ckpt_dir": str(out / f"{label}_mgpu"),
                        "output_dir": str(out / f"{label}_mgpu"),
                    },
                },
                _exists("out", f"{label}_mgpu", "model_finetuned.pt" if label == "cxr" else "model.pt"),
            )
        )
    for size, checkpoint in (("3b", vicuna), ("8b", llama3), ("13b", vicuna)):
        runs.append(
            (
                f"vila_m3_{size} inference",
                f"vila_m3_{size}",
                {
                    "tracking": "mlflow" if size == "8b" else None,
                    "overrides": {
                        "model_path": str(checkpoint),
                        "image": str(cxr / "cxr0.png"),
                        "prompt": "Is there an effusion?",
                        "max_new_tokens": 8,
                        "device": "cpu",
                        "expert_overrides": expert_overrides,
                        "output_dir": str(out / f"vlm_{size}"),
                    },
                },
                _exists("out", f"vlm_{size}", "answer", "trace.json"),
            )
        )
    vqa = synthetic.write_vqa_records(cxr, "cxr0.png")
    runs.append(
        (
            "vila_m3_3b evaluate (radvqa records)",
            "vila_m3_3b",
            {
                "config_files": ("configs/inference.json", "configs/evaluate.json"),
                "overrides": {
                    "model_path": str(vicuna),
                    "dataset_dir": str(vqa.parent),
                    "max_new_tokens": 4,
                    "device": "cpu",
                    "output_dir": str(out / "vlm_eval"),
                },
            },
            _exists("out", "vlm_eval", "results.json"),
        )
    )
    runs.append(
        (
            "vila_m3_8b batch inference",
            "vila_m3_8b",
            {
                "config_files": ("configs/inference.json", "configs/batch_inference.json"),
                "overrides": {
                    "model_path": str(llama3),
                    "requests_file": str(requests),
                    "max_new_tokens": 8,
                    "device": "cpu",
                    "batch_size": 2,
                    "experts": [],
                    "output_dir": str(out / "vlm_batch"),
                },
            },
            _exists("out", "vlm_batch", "answers.jsonl"),
        )
    )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="*", help="only runs of these bundles (default: all)")
    parser.add_argument("--keep", default=None, help="work folder to keep (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vila_m3_bundle_runs_") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = [r for r in plan(work) if not args.bundles or r[1] in args.bundles]
        failures: list[tuple[str, BundleRun, str]] = []
        total = 0.0
        for index, (name, bundle, kwargs, check) in enumerate(runs, start=1):
            problem = None
            if not kwargs.get("nproc"):
                try:
                    missing = missing_workflow_properties(
                        bundle, kwargs.get("config_files", ("configs/inference.json",)), kwargs.get("overrides")
                    )
                except Exception as err:  # reported like a failed run, with the reason
                    missing = [f"check_properties raised {type(err).__name__}: {err}"]
                problem = f"check_properties: {missing}" if missing else None
            result = run_bundle(bundle, timeout=args.timeout, **kwargs)
            total += result.seconds
            if problem is None:
                problem = None if result.ok else f"exit code {result.returncode}"
            if problem is None and check is not None:
                problem = check(work)
            print(
                f"[{index}/{len(runs)}] {'ok  ' if problem is None else 'FAIL'} {name} ({result.seconds:.0f} s)",
                flush=True,
            )
            if problem is not None:
                failures.append((name, result, problem))
        for name, result, problem in failures:
            errors = [line for line in result.output.splitlines() if "Error" in line or "error:" in line]
            print(f"\n=== {name}: {problem}\n$ {' '.join(result.command)}")
            print("\n".join(errors[-30:]) + "\n--- output tail ---\n" + result.output[-3000:])
        print(f"\n{len(runs) - len(failures)}/{len(runs)} bundle runs passed in {total:.0f} s")
        print(f"bundles: {len(runs) - len(failures)} passed, {len(failures)} failed")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
