"""summary.md in the seed tables' layout (the published 8B row as input), the plot, tracking URI rules."""

import math

import pytest

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.summary import pct, plot_per_class, render_summary
from vila_m3_core.evaluation.tracking import flat_metrics, resolve_tracking_uri


def _run(task, metrics, with_expert=False):
    return {"task": task, "model": "Llama3-VILA-M3-8B", "with_expert": with_expert, "metrics": metrics}


def test_summary_reproduces_the_seed_tables_from_the_published_8b_numbers(tmp_path):
    runs = [
        _run("radvqa", {"accuracy": 0.845, "per_class": {"closed": 0.845}}),
        _run("slake", {"accuracy": 0.845}),
        _run("pathvqa", {"accuracy": 0.900}),
        _run("report_mimic", {"BLEU_4": 0.215, "ROUGE_L": 0.323, "green": 0.400}),
        _run("chestxray14", {"f1": 0.5}),
        _run("chestxray14", {"f1": 0.6, "expert_alone": {"f1": 0.5, "per_class": {"fracture": {"f1": 0.5}}}}, "expert"),
        _run("chexpert", {"f1": 0.515}, "expert"),
    ]
    text = render_summary(runs)
    assert "| Llama3-VILA-M3-8B | 84.5 | 84.5 | 90.0 | 86.3 |" in text  # Average = mean of the three
    assert "| Llama3-VILA-M3-8B | report_mimic | 21.5 | 32.3 | 40.0 |" in text
    assert "| Llama3-VILA-M3-8B w/o expert | 50.0 | - |" in text
    assert "| Llama3-VILA-M3-8B with expert | 60.0 | 51.5 |" in text
    assert "| TorchXRayVision | 50.0 | - |" in text
    assert plot_per_class(runs, tmp_path / "p.png").stat().st_size > 1000


def test_average_needs_all_three_vqa_sets():
    text = render_summary([_run("radvqa", {"accuracy": 0.78})])
    assert "| Llama3-VILA-M3-8B | 78.0 | - | - | - |" in text


def test_pct_formatting():
    assert pct(0.8453) == "84.5" and pct(1) == "100.0" and pct(None) == "-" and pct(math.nan) == "-"


def test_tracking_uri_rules(tmp_path):
    assert resolve_tracking_uri(None, tmp_path) is None
    assert resolve_tracking_uri("mlflow", tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    assert resolve_tracking_uri("sqlite:////x/m.db", tmp_path) == "sqlite:////x/m.db"
    assert resolve_tracking_uri("http://mlflow:5000", tmp_path) == "http://mlflow:5000"
    with pytest.raises(VilaM3Error, match="sqlite"):
        resolve_tracking_uri("file:///tmp/mlruns", tmp_path)


def test_flat_metrics_keeps_numbers_only():
    flat = flat_metrics({"f1": 0.5, "per_class": {"lung opacity": {"f1": 0.2, "auc": math.nan}}, "ok": True, "s": "x"})
    assert flat == {"f1": 0.5, "per_class.lung_opacity.f1": 0.2}


def _result(task="radvqa"):
    return {"task": task, "model_path": "tiny", "metrics": {"accuracy": 0.5}, "generation": {}}


def test_mlflow_artifacts_go_beside_the_database_or_the_move_is_reported(tmp_path, caplog, monkeypatch):
    import mlflow

    from vila_m3_core.evaluation.tracking import EXPERIMENT, log_to_mlflow

    monkeypatch.chdir(tmp_path)  # MLflow's own default would be ./mlruns here
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text("{}")
    uri = f"sqlite:///{tmp_path / 'db' / 'mlruns.db'}"
    (tmp_path / "db").mkdir()
    log_to_mlflow(uri, _result(), tmp_path / "out")
    log_to_mlflow(uri, _result(), tmp_path / "out")  # the second run reuses the experiment
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert len(runs) == 2 and not (tmp_path / "mlruns").exists()
    assert all((tmp_path / "db" / "mlruns" / run / "artifacts" / "results.json").is_file() for run in runs["run_id"])

    other = f"sqlite:///{tmp_path / 'db' / 'older.db'}"
    mlflow.set_tracking_uri(other)
    mlflow.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "elsewhere").as_uri())
    with caplog.at_level("WARNING", logger="vila_m3_core.evaluation.tracking"):
        log_to_mlflow(other, _result(), tmp_path / "out")
    assert "keeps its artifacts in" in caplog.text and "elsewhere" in caplog.text
