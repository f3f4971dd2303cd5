"""The CLI verb (single task, --suite all, errors) and a 2-process torchrun (gloo, CPU) equal to one process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import GEN

from vila_m3_core.cli import main
from vila_m3_core.evaluation import run_evaluation
from vila_m3_core.evaluation.runner import read_answer_lines

REPO = Path(__file__).resolve().parents[2]


def test_two_process_torchrun_equals_single_process(vqa_dataset, tiny_llama3, llama3_model, tmp_path):
    data, images = vqa_dataset
    single = run_evaluation("radvqa", data, images, str(tiny_llama3), tmp_path / "single", batch_size=2,
                            vlm=llama3_model, **GEN)  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "vila_m3_core", "evaluate", "--task", "radvqa", "--data", str(data), "--image_root", str(images),
        "--model_path", str(tiny_llama3), "--output_dir", str(tmp_path / "dist"), "--batch_size", "2",
        "--max_new_tokens", str(GEN["max_new_tokens"]), "--device", "cpu",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads((tmp_path / "dist" / "results.json").read_text())
    assert dist["world_size"] == 2
    assert dist["metrics"] == single["metrics"]
    texts = {k: v["text"] for k, v in read_answer_lines(tmp_path / "dist").items()}
    assert texts == {k: v["text"] for k, v in read_answer_lines(tmp_path / "single").items()}
    assert not list((tmp_path / "dist").glob("answers.rank*.jsonl"))  # parts merged into answers.jsonl
    assert "| Model | VQA-RAD |" in proc.stdout


def test_cli_suite_all_prints_one_table(vqa_dataset, tiny_llama3, tmp_path, capsys):
    data, images = vqa_dataset
    records = tmp_path / "records"
    records.mkdir()
    shutil.copy(data, records / "radvqa.json")
    slake = json.loads(data.read_text())[:2]
    (records / "slake.jsonl").write_text("".join(json.dumps(r) + "\n" for r in slake))
    main(
        [
            "evaluate",
            "--suite",
            "all",
            "--data_dir",
            str(records),
            "--image_root",
            str(images),
            "--model_path",
            str(tiny_llama3),
            "--output_dir",
            str(tmp_path / "out"),
            "--max_new_tokens",
            "4",
            "--device",
            "cpu",
        ]
    )
    printed = capsys.readouterr().out
    assert "| Model | VQA-RAD | SLAKE | PathVQA | Average |" in printed
    assert "| 50.0 |" in printed  # radvqa as in the single-task tests
    assert (tmp_path / "out" / "radvqa" / "answers.jsonl").is_file()
    assert (tmp_path / "out" / "slake" / "answers.jsonl").is_file()
    suite = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["task"] for r in suite["runs"]] == ["radvqa", "slake"]


def test_cli_errors_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--task", "nope", "--data", str(tmp_path / "x.json"), "--model_path", "m"])
    assert exit_info.value.code == 2
    assert "Unknown task 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--suite", "all", "--data_dir", str(tmp_path), "--model_path", "m"])
    assert "No task records" in capsys.readouterr().err


def test_two_process_report_with_expert_and_green_equals_single_process(cxr_data, tiny_llama3, llama3_model, tmp_path):
    from vila_m3_core.evaluation.sample_text import load_iu_reports

    reports = list(load_iu_reports().values())[:3]
    records = [
        {"id": f"r{i}", "image": f"img{i % 2}.png", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image in detail."}, {"from": "gpt", "value": text}]}
        for i, text in enumerate(reports)
    ]  # fmt: skip
    data = tmp_path / "report_iu.json"
    data.write_text(json.dumps(records))
    options = {"with_expert": True, "expert_predictions": str(cxr_data / "preds.json"), "meteor": False,
               "tokenizer": "python", "green_model": str(tiny_llama3 / "llm"), "green_max_new_tokens": 4}  # fmt: skip
    single = run_evaluation("report_iu", data, cxr_data / "images", str(tiny_llama3), tmp_path / "single",
                            batch_size=2, vlm=llama3_model, device="cpu", **GEN, **options)  # fmt: skip
    script = (
        "import json, sys; from vila_m3_core.evaluation import run_evaluation; "
        f"run_evaluation('report_iu', {str(data)!r}, {str(cxr_data / 'images')!r}, {str(tiny_llama3)!r}, "
        f"{str(tmp_path / 'dist')!r}, batch_size=2, device='cpu', max_new_tokens={GEN['max_new_tokens']}, "
        f"**json.loads(sys.argv[1])); "
        "from vila_m3_core.distributed import finish_distributed_run; finish_distributed_run()"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
           "--no-python", sys.executable, "-c", script, json.dumps(options)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads((tmp_path / "dist" / "results.json").read_text())
    assert dist["world_size"] == 2
    assert dist["metrics"] == single["metrics"]  # BLEU/ROUGE/CIDEr and GREEN from the judge run on both ranks
    green = [json.loads(line) for line in (tmp_path / "dist" / "green.jsonl").read_text().splitlines()]
    assert [g["question_id"] for g in green] == ["r0", "r1", "r2"]
