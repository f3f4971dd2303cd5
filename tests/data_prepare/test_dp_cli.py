"""The command line: verbs, byte-identical reruns, exit statuses, validate and mixture."""

from __future__ import annotations

import json

import pytest
from dp_raw_fixtures import write_slake, write_vqa_rad

from data_prepare.cli import main
from data_prepare.mixture import REFERENCE_REPEATS, write_mixture
from vila_m3_core.errors import VilaM3Error


def run(argv):
    """Run the CLI in-process; returns the exit status (0 when it returns normally)."""
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_cli_runs_are_byte_identical_for_the_same_seed(tmp_path, capsys):
    folder = write_slake(tmp_path / "slake")
    for name in ("a", "b"):
        assert run(["slake", "--input", str(folder), "--output", str(tmp_path / f"{name}.jsonl"), "--seed", "7"]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"dataset": "slake/train", "read": 4, "written": 3, "dropped": {"not English": 1}}


def test_cli_radvqa_split_and_validate(tmp_path, capsys):
    source = write_vqa_rad(tmp_path)
    output = tmp_path / "rad_test.json"
    assert run(["radvqa", "--input", str(source), "--output", str(output), "--split", "test"]) == 0
    capsys.readouterr()
    assert run(["validate", str(output), "--image_root", str(tmp_path / "VQA_RAD_Image_Folder")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == 2 and report["counts"]["answer_type"] == {"closed": 2}


def test_cli_exit_status_on_bad_input_and_invalid_file(tmp_path, capsys):
    assert run(["radvqa", "--input", str(tmp_path / "nope.json"), "--output", str(tmp_path / "o.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "x", "conversations": []}]))
    assert run(["validate", str(tmp_path / "bad.json")]) == 1


def test_mixture_defaults_to_reference_repeats(tmp_path, capsys):
    folder = write_slake(tmp_path / "slake")
    records = tmp_path / "slake.json"
    assert run(["slake", "--input", str(folder), "--output", str(records)]) == 0
    spec = {
        "slake": {"records": str(records), "image_root": str(folder / "imgs")},
        "expert_brats": {"records": str(records), "image_root": str(tmp_path), "repeat": 3},
    }
    manifest = write_mixture(str(tmp_path / "mix.json"), spec)
    assert [(d["name"], d["repeat"], d["n_records"]) for d in manifest["datasets"]] == [
        ("slake", 4, 3),
        ("expert_brats", 3, 3),
    ]
    assert manifest["data_mixture"] == "+".join(["slake"] * 4 + ["expert_brats"] * 3)
    assert json.loads((tmp_path / "mix.json").read_text()) == manifest
    assert sum(REFERENCE_REPEATS.values()) == 50
    with pytest.raises(VilaM3Error, match="not a folder"):
        write_mixture(str(tmp_path / "m.json"), {"radvqa": {"records": str(records), "image_root": "nope"}})
    with pytest.raises(VilaM3Error, match="repeat"):
        write_mixture(str(tmp_path / "m.json"), {"mydata": {"records": str(records)}})
    (tmp_path / "spec.json").write_text(json.dumps({"mimic_report": str(records)}))
    capsys.readouterr()
    assert run(["mixture", "--output", str(tmp_path / "m2.json"), "--datasets", str(tmp_path / "spec.json")]) == 0
    assert json.loads(capsys.readouterr().out)["data_mixture"] == "mimic_report_dcl_train_update0_clean"
    (tmp_path / "broken.json").write_text(json.dumps([{"id": "x", "conversations": []}]))
    with pytest.raises(VilaM3Error, match="invalid record"):
        write_mixture(str(tmp_path / "m.json"), {"radvqa": str(tmp_path / "broken.json")})
