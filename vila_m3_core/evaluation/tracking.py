"""Optional MLflow logging of evaluation results (parameters, flat numeric metrics, output files)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

EXPERIMENT = "vila-m3-evaluation"


def resolve_tracking_uri(tracking: str | None, output_dir: str | Path) -> str | None:
    """``None`` -> no tracking; ``"mlflow"`` -> ``sqlite:///<output_dir>/mlruns.db``; else the URI itself, which
    must be ``sqlite:///...`` or an ``http(s)://`` server (MLflow's file store is deprecated)."""
    if not tracking:
        return None
    if tracking == "mlflow":
        return f"sqlite:///{(Path(output_dir).resolve() / 'mlruns.db')}"
    if tracking.startswith("sqlite:///") or tracking.startswith(("http://", "https://")):
        return tracking
    raise VilaM3Error(f"tracking must be 'mlflow', a sqlite:///... URI or an http(s):// server URL, not {tracking!r}.")


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested metrics dict as ``{"a.b": value}`` (MLflow metric names)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}".replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_")
        if isinstance(value, dict):
            out.update(flat_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[name] = float(value)
    return out


def _use_experiment(mlflow: Any, uri: str) -> None:
    """Select :data:`EXPERIMENT`, creating it with its artifacts beside a SQLite store.

    MLflow's default artifact root for a database store is ``./mlruns`` under the *current directory*, which
    scatters result files wherever the command was started; MONAI's ``MLFlowHandler`` makes the same choice.
    An experiment created elsewhere keeps its own artifact location (MLflow cannot move it): that is logged.
    """
    wanted = None
    if uri.startswith("sqlite:///"):
        wanted = (Path(uri[len("sqlite:///") :]).parent / "mlruns").resolve().as_uri()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=wanted)
        except mlflow.exceptions.MlflowException as err:  # another process created it meanwhile
            if mlflow.get_experiment_by_name(EXPERIMENT) is None:
                raise VilaM3Error(f"Cannot create the MLflow experiment {EXPERIMENT!r} at {uri}: {err}") from err
    elif wanted is not None and experiment.artifact_location.rstrip("/") != wanted.rstrip("/"):
        logger.warning(
            "MLflow experiment %r at %s keeps its artifacts in %s (created before), not next to the database",
            EXPERIMENT,
            uri,
            experiment.artifact_location,
        )
    mlflow.set_experiment(EXPERIMENT)


def log_to_mlflow(uri: str, result: dict[str, Any], output_dir: str | Path) -> None:
    """Log one evaluation run: parameters (task, model, settings), every numeric metric, and the output files."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    _use_experiment(mlflow, uri)
    with mlflow.start_run(run_name=result.get("run_name")):
        mlflow.log_params(
            {
                "task": result["task"],
                "model_path": result["model_path"],
                "conv_mode": result.get("conv_mode"),
                "with_expert": result.get("with_expert"),
                "batch_size": result.get("batch_size"),
                **{f"gen.{k}": v for k, v in result.get("generation", {}).items()},
            }
        )
        mlflow.log_metrics(flat_metrics(result["metrics"]))
        for name in ("results.json", "summary.md", "per_class.png"):
            path = Path(output_dir) / name
            if path.is_file():
                mlflow.log_artifact(str(path))
