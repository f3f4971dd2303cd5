"""``summary.md`` tables in the layout of the seed's benchmark tables (values x100, 1 decimal) and the bar plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal (``0.8453 -> "84.5"``); ``-`` for missing/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * float(value):.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def render_summary(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown tables for one or more runs (each a ``results.json`` dict: task, model, with_expert, metrics).

    Tables, as in the seed README: VQA (VQA-RAD, SLAKE, PathVQA, Average of the three), MIMIC-VQA, report
    generation (BLEU-4, ROUGE-L, GREEN), classification F1 (w/o expert, with expert, and the expert alone).
    """
    by_task = {(r["task"], bool(r.get("with_expert"))): r for r in runs}
    model = runs[0].get("model", "model") if runs else "model"
    out = ["# vila-m3 evaluation", ""]
    vqa = [by_task.get((t, False)) for t in ("radvqa", "slake", "pathvqa")]
    if any(vqa):
        accs = [r["metrics"]["accuracy"] if r else None for r in vqa]
        average = sum(accs) / 3 if all(a is not None for a in accs) else None  # type: ignore[arg-type]
        out += ["## VQA (exact match accuracy)", ""]
        out += _table(["Model", "VQA-RAD", "SLAKE", "PathVQA", "Average"], [[model, *map(pct, accs), pct(average)]])
    if (mimic := by_task.get(("mimicvqa", False))) is not None:
        m = mimic["metrics"]
        out += ["## MIMIC-VQA", ""]
        out += _table(
            ["Model", "closed (wavg)", "open recall (wavg)", "closed (avg)", "open recall (avg)"],
            [[model, pct(m["wavg_closed"]), pct(m["wavg_open"]), pct(m["avg_closed"]), pct(m["avg_open"])]],
        )
    reports = [r for (t, _), r in by_task.items() if t.startswith("report_")]
    if reports:
        rows = []
        for r in reports:
            m = r["metrics"]
            label = f"{model} with expert" if r.get("with_expert") else model
            rows.append([label, r["task"], pct(m.get("BLEU_4")), pct(m.get("ROUGE_L")), pct(m.get("green"))])
        out += ["## Report generation", ""]
        out += _table(["Model", "Dataset", "BLEU-4", "ROUGE-L", "GREEN"], rows)
    cls_tasks = ("chestxray14", "chexpert")
    if any((t, e) in by_task for t in cls_tasks for e in (False, True)):
        rows = []
        for expert, label in ((False, f"{model} w/o expert"), (True, f"{model} with expert")):
            cells = [by_task.get((t, expert)) for t in cls_tasks]
            if any(cells):
                rows.append([label, *(pct(c["metrics"]["f1"]) if c else "-" for c in cells)])
        alone = [(by_task.get((t, True)) or {}).get("metrics", {}).get("expert_alone") for t in cls_tasks]
        if any(alone):
            rows.append(["TorchXRayVision", *(pct(a["f1"]) if a else "-" for a in alone)])
        out += ["## Classification (mean binary F1)", ""]
        out += _table(["Model", "ChestX-ray14", "CheXpert"], rows)
    out += ["## Details", ""]
    for r in runs:
        m = r["metrics"]
        name = r["task"] + (" (with expert)" if r.get("with_expert") else "")
        details = ", ".join(f"{k} {pct(v)}" for k, v in m.get("per_class", {}).items())
        counts = {k: v for k, v in m.items() if k.startswith("n_") or k.startswith("total_") or k == "n"}
        out.append(f"- **{name}**: {details}; counts {counts}")
    return "\n".join(out) + "\n"


def plot_per_class(runs: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Horizontal bar chart of each run's ``per_class`` values (x100), one panel per run; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [r for r in runs if r["metrics"].get("per_class")]
    for run in list(panels):  # the expert alone (TorchXRayVision row) gets its own panel
        alone = run["metrics"].get("expert_alone")
        if alone:
            per_class = {cls: v["f1"] for cls, v in alone["per_class"].items()}
            panels.append({"task": run["task"] + " (TorchXRayVision alone)", "metrics": {"per_class": per_class}})
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(7, 1.2 + 0.45 * max(
        (len(r["metrics"]["per_class"]) for r in panels), default=1) * max(1, len(panels))), squeeze=False)  # fmt: skip
    for ax, run in zip(axes[:, 0], panels, strict=False):
        labels = list(run["metrics"]["per_class"])
        values = [100 * float(v) if v == v else 0.0 for v in run["metrics"]["per_class"].values()]
        ax.barh(labels, values, color="#4c72b0")
        ax.set_xlim(0, 100)
        ax.set_xlabel(_axis_label(run["task"]), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(run["task"] + (" (with expert)" if run.get("with_expert") else ""), fontsize=10)
        for y, v in enumerate(values):
            ax.text(min(v + 1, 92), y, f"{v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _axis_label(task: str) -> str:
    kind = task.split(" ")[0]
    if kind in ("chestxray14", "chexpert"):
        return "binary F1 x100"
    if kind.startswith("report"):
        return "metric x100"
    if kind == "mimicvqa":
        return "closed accuracy / open recall x100"
    return "accuracy (open: recall) x100"
