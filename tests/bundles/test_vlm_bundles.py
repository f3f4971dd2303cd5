"""The VILA-M3 bundles run through ``python -m monai.bundle run`` with a tiny checkpoint (issue 4 acceptance test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vila_m3_core.bundles.runner import REPO_ROOT, run_bundle
from vila_m3_core.bundles.vlm import experts_from_bundles
from vila_m3_core.errors import VilaM3Error


def test_8b_inference_from_repo_root_writes_answer_and_trace(tiny_llama3, cxr_png, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", "bundles/vila_m3_8b/configs/inference.json",
        "--model_path", str(tiny_llama3), "--image", cxr_png, "--prompt", "Is there a pleural effusion?",
        "--max_new_tokens", "6", "--device", "cpu", "--output_dir", str(out), "--tracking", "mlflow",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "answer" / "answer.json").read_text())
    assert record["prompt"] == "Is there a pleural effusion?" and record["image"] == cxr_png
    assert isinstance(record["answer"], str) and record["modality"] == "CXR"
    assert (out / "answer" / "answer.txt").read_text().strip() == record["answer"].strip()
    trace = json.loads((out / "answer" / "trace.json").read_text())
    kinds = [step["type"] for step in trace["steps"]]
    assert kinds[0] == "input" and "generation" in kinds
    generations = [step for step in trace["steps"] if step["type"] == "generation"]
    assert generations[-1]["output"].strip() == record["answer"].strip()
    assert (out / "mlruns.db").is_file()  # --tracking mlflow: sqlite store under the output dir


def test_batch_overlay_writes_one_line_per_request_and_records_failures(tiny_vicuna, cxr_png, tmp_path):
    requests = tmp_path / "requests.jsonl"
    lines = [{"id": "a", "image": cxr_png, "prompt": "Describe."}, {"id": "b", "image": str(tmp_path / "gone.png"),
             "prompt": "Describe."}, {"id": "c", "image": cxr_png, "prompt": "Any mass?"}]
    requests.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "out"
    run = run_bundle("vila_m3_3b", ("configs/inference.json", "configs/batch_inference.json"), {
        "model_path": str(tiny_vicuna), "requests_file": str(requests), "max_new_tokens": 4, "device": "cpu",
        "batch_size": 2, "experts": [], "output_dir": str(out)}, timeout=300)
    assert run.ok, run.output[-3000:]
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == ["a", "b", "c"]
    assert answers[1]["answer"] is None and "not found" in answers[1]["error"].lower()
    assert isinstance(answers[0]["answer"], str) and (out / "c" / "trace.json").is_file()


def test_experts_come_from_the_expert_bundle_configs(tmp_path):
    bundles = REPO_ROOT / "bundles"
    experts = experts_from_bundles(bundles, ["cxr", "VISTA3D", "brats"], {
        "expert_vista3d": {"encoder_embed_dim": 8, "patch_size": [32, 32, 32], "ckpt_path": str(tmp_path / "v.pt")},
        "expert_cxr": {"weights_dir": str(tmp_path / "xrv")}}, device="cpu")
    assert sorted(experts) == ["BRATS", "CXR", "VISTA3D"]
    vista = experts["VISTA3D"]
    assert vista.encoder_embed_dim == 8 and vista.roi_size == (32, 32, 32) and vista.weights == str(tmp_path / "v.pt")
    assert experts["BRATS"].roi_size == (240, 240, 160)  # the bundle's own setting
    assert Path(experts["BRATS"].weights) == bundles / "expert_brats" / "models" / "model.pt"
    assert experts["CXR"].cache_dir == str(tmp_path / "xrv")
    with pytest.raises(VilaM3Error, match="Did you mean: patch_size"):
        experts_from_bundles(bundles, ["VISTA3D"], {"expert_vista3d": {"patch_sise": [32, 32, 32]}}, device="cpu")
    with pytest.raises(VilaM3Error, match="Unknown expert"):
        experts_from_bundles(bundles, ["MAMMO"], device="cpu")
