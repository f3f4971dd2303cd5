"""VQA runner end to end on a tiny checkpoint: scores, outputs, batched == unbatched, resume after interruption,
PathVQA/MIMIC-VQA wiring, MLflow tracking."""

import json
import pickle

import pytest
from eval_helpers import GEN, vqa_records, write_images

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation import run_evaluation
from vila_m3_core.evaluation.runner import read_answer_lines


@pytest.fixture(scope="module")
def batched_run(vqa_dataset, llama3_model, tmp_path_factory):
    data, images = vqa_dataset
    out = tmp_path_factory.mktemp("run_b4")
    result = run_evaluation("radvqa", data, images, "tiny", out, batch_size=4, vlm=llama3_model, **GEN)
    return result, out


def _texts(out_dir):
    return {qid: line["text"] for qid, line in read_answer_lines(out_dir).items()}


def test_vqa_scores_and_outputs(batched_run):
    result, out = batched_run
    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(0.5)  # the three answers set to the model's own outputs
    assert metrics["n"] == 6 and metrics["n_missing"] == 0 and metrics["n_failed"] == 0
    assert metrics["open_exact_match"] == pytest.approx(1.0) and metrics["closed_accuracy"] == 0.0
    lines = (out / "answers.jsonl").read_text().splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == [f"q{i}" for i in range(6)]
    first = json.loads(lines[0])
    assert first["prompt"] == (
        "<image>\nIs there an abnormality in region 0?\nAnswer with the option's letter from the given choices directly."
    )
    assert json.loads((out / "results.json").read_text())["metrics"]["accuracy"] == metrics["accuracy"]
    summary = (out / "summary.md").read_text()
    assert "| Model | VQA-RAD | SLAKE | PathVQA | Average |" in summary and "| 50.0 | - | - | - |" in summary
    assert (out / "per_class.png").stat().st_size > 1000
    assert result["generation"] == {"temperature": 0.0, "max_new_tokens": 4}


def test_batched_equals_unbatched(batched_run, vqa_dataset, llama3_model, tmp_path):
    data, images = vqa_dataset
    result = run_evaluation("radvqa", data, images, "tiny", tmp_path, batch_size=1, vlm=llama3_model, **GEN)
    assert _texts(tmp_path) == _texts(batched_run[1])
    assert result["metrics"]["accuracy"] == batched_run[0]["metrics"]["accuracy"]


class _Interrupted:
    """The real model, interrupted (as by Ctrl-C or a kill) while answering its second batch."""

    def __init__(self, vlm):
        self.vlm, self.calls = vlm, 0
        self.conv_mode = vlm.conv_mode

    def generate_batch(self, requests, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.vlm.generate_batch(requests, **kwargs)


def test_resume_after_an_interrupted_run(batched_run, vqa_dataset, llama3_model, tmp_path):
    data, images = vqa_dataset
    with pytest.raises(KeyboardInterrupt):
        run_evaluation("radvqa", data, images, "tiny", tmp_path, batch_size=2, vlm=_Interrupted(llama3_model), **GEN)
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == 2  # the first batch was flushed
    with (tmp_path / "answers.jsonl").open("a") as sink:
        sink.write('{"question_id": "q2", "te')  # a line cut by the kill
    result = run_evaluation("radvqa", data, images, "tiny", tmp_path, batch_size=2, vlm=llama3_model, **GEN)
    assert result["timing"]["generated"] == 4
    assert _texts(tmp_path) == _texts(batched_run[1])
    assert result["metrics"]["accuracy"] == pytest.approx(0.5)
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == 6


def test_missing_image_is_counted_not_fatal(vqa_dataset, llama3_model, tmp_path):
    data, images = vqa_dataset
    records = json.loads(data.read_text())[:3]
    records[1]["image"] = "does_not_exist.png"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    result = run_evaluation("radvqa", path, images, "tiny", tmp_path / "o", batch_size=4, vlm=llama3_model, **GEN)
    assert result["metrics"]["n_failed"] == 1
    failed = read_answer_lines(tmp_path / "o")["q1"]
    assert "error" in failed and failed["text"] == ""
    assert result["metrics"]["accuracy"] == pytest.approx(2 / 3)  # q0, q2 right (model answers); q1 failed = wrong


def test_pathvqa_scores_the_yes_no_subset_joined_on_question_ids(llama3_model, tmp_path):
    names = write_images(tmp_path / "images", 2)
    records = vqa_records(names, 4)
    for i, record in enumerate(records):
        record["id"] = str(1000 + i)
        record.pop("answer_type")
        record["conversations"][1]["value"] = "yes" if i != 3 else "mitosis"
    (tmp_path / "p.json").write_text(json.dumps(records))
    pkl = [{"question_id": 1000 + i, "answer_type": "yes/no", "label": {"yes": 1}} for i in range(3)]
    (tmp_path / "test_vqa.pkl").write_bytes(pickle.dumps(pkl))
    result = run_evaluation(
        "pathvqa", tmp_path / "p.json", tmp_path / "images", "tiny", tmp_path / "o", vlm=llama3_model,
        pathvqa_pkl=tmp_path / "test_vqa.pkl", **GEN,
    )  # fmt: skip
    assert result["n_items"] == 3 and result["metrics"]["n"] == 3
    texts = _texts(tmp_path / "o")
    expected = sum(texts[str(1000 + i)].strip().lower() == "yes" for i in range(3)) / 3
    assert result["metrics"]["accuracy"] == pytest.approx(expected)


def test_mimicvqa_groups_by_question_type(llama3_model, tmp_path):
    names = write_images(tmp_path / "images", 2)
    records = vqa_records(names, 4)
    for i, record in enumerate(records):
        record["question_type"] = ["presence", "location"][i % 2]
        record["answer_type"] = "closed" if i % 2 == 0 else "open"
    (tmp_path / "m.json").write_text(json.dumps(records))
    result = run_evaluation("mimicvqa", tmp_path / "m.json", tmp_path / "images", "tiny", tmp_path / "o",
                            vlm=llama3_model, **GEN)  # fmt: skip
    metrics = result["metrics"]
    assert set(metrics["per_type"]) == {"presence", "location"}
    assert metrics["total_closed"] == 2 and metrics["total_open"] == 2
    first = read_answer_lines(tmp_path / "o")["q0"]
    assert "Answer with the option" not in first["prompt"]  # no single-pred suffix for MIMIC-VQA


def test_mlflow_tracking_and_a_resume_with_nothing_left(batched_run, vqa_dataset, llama3_model, tmp_path):
    import shutil

    import mlflow

    data, images = vqa_dataset
    shutil.copy(batched_run[1] / "answers.jsonl", tmp_path / "answers.jsonl")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = run_evaluation("radvqa", data, images, "tiny", tmp_path, vlm=llama3_model, tracking=uri, **GEN)
    assert result["timing"]["generated"] == 0
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["vila-m3-evaluation"])
    assert len(runs) == 1 and runs["metrics.accuracy"].iloc[0] == pytest.approx(0.5)
    artifacts = tmp_path / "mlruns" / runs["run_id"].iloc[0] / "artifacts"
    assert (artifacts / "results.json").is_file()  # beside the database, not under the current directory
    with pytest.raises(VilaM3Error, match="tracking"):
        run_evaluation("radvqa", data, images, "tiny", tmp_path, vlm=llama3_model, tracking="./mlruns", **GEN)


def test_bad_inputs_are_clear_errors(vqa_dataset, llama3_model, tmp_path):
    data, images = vqa_dataset
    with pytest.raises(VilaM3Error, match="Unknown task"):
        run_evaluation("vqa", data, images, "tiny", tmp_path, vlm=llama3_model)
    with pytest.raises(VilaM3Error, match="not found"):
        run_evaluation("radvqa", tmp_path / "none.json", images, "tiny", tmp_path, vlm=llama3_model)
    (tmp_path / "bad.json").write_text("[{]")
    with pytest.raises(VilaM3Error, match="neither a JSON list"):
        run_evaluation("radvqa", tmp_path / "bad.json", images, "tiny", tmp_path, vlm=llama3_model)
    with pytest.raises(VilaM3Error, match="classification and report"):
        run_evaluation("radvqa", data, images, "tiny", tmp_path, vlm=llama3_model, with_expert=True)
    (tmp_path / "empty.json").write_text(json.dumps([{"id": "1", "conversations": []}]))
    with pytest.raises(VilaM3Error, match="No usable"):
        run_evaluation("radvqa", tmp_path / "empty.json", images, "tiny", tmp_path, vlm=llama3_model)
