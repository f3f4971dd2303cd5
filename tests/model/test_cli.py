"""`vila-m3 generate` end to end in a subprocess, incl. the Hub code path from a pre-populated offline cache."""

import json
import os
import shutil
import subprocess
import sys

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def run_cli(*args, env=None, cwd=None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vila_m3_core", *args], capture_output=True, text=True, env=full_env, cwd=cwd,
        timeout=300,
    )  # fmt: skip


def test_generate_prints_answer_and_json(tiny_vicuna, sample_png):
    plain = run_cli("generate", "--model_path", str(tiny_vicuna), "--image", str(sample_png), "--prompt",
                    "What is shown?", "--max_new_tokens", "4")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    answer = plain.stdout.strip()
    assert answer
    record = run_cli("generate", "--model_path", str(tiny_vicuna), "--image", str(sample_png), "--prompt",
                     "What is shown?", "--max_new_tokens", "4", "--json")  # fmt: skip
    data = json.loads(record.stdout)
    assert data["answer"] == answer  # greedy: same answer both times
    assert data["conv_mode"] == "vicuna_v1" and data["prompt_tokens"] > 196 and data["new_tokens"] <= 4


def test_hub_repo_id_from_offline_cache(tiny_llama3, sample_png, tmp_path):
    cache = tmp_path / "hub"
    repo = cache / "models--MONAI--Tiny-VILA-M3-8B"
    shutil.copytree(tiny_llama3, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    result = run_cli("generate", "--model_path", "MONAI/Tiny-VILA-M3-8B", "--image", str(sample_png), "--prompt",
                     "Hi", "--max_new_tokens", "3", "--json", env={"HF_HUB_CACHE": str(cache)}, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "MONAI/Tiny-VILA-M3-8B" and data["commit"] == COMMIT and data["revision"] == "main"
    assert data["conv_mode"] == "llama_3"  # from the "8B" in the repo name


def test_offline_without_cache_fails_fast_with_instructions(tmp_path, sample_png):
    result = run_cli("generate", "--prompt", "Hi", "--image", str(sample_png), env={"HF_HUB_CACHE": str(tmp_path)},
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "MONAI/Llama3-VILA-M3-8B" in result.stderr and str(tmp_path) in result.stderr
    assert "--model_path" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "Hi", "--image", "/no/such.png"], "Image file not found"),
        (["--prompt", "Hi", "--conv_mode", "alpaca"], "Unknown conv_mode"),
        (["--image", "x.png"], "--prompt"),
        (["--prompt", "<image><image> two?", "--image", "IMG"], r"2 <image> token(s) but 1 image"),
    ],
)
def test_bad_input_is_one_clear_line(tiny_vicuna, sample_png, args, message, capsys):
    from vila_m3_core.cli import main

    args = [str(sample_png) if a == "IMG" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model_path", str(tiny_vicuna), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
