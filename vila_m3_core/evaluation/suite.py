"""``--suite all``: run every benchmark that has a records file and write one summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.api import _expert_mode, _load_vlm, _write_outputs, run_evaluation
from vila_m3_core.evaluation.runner import init_distributed
from vila_m3_core.evaluation.summary import render_summary
from vila_m3_core.evaluation.tasks import TASKS


def run_suite(
    data_dir: str | Path,
    image_root: str | Path | None,
    model_path: str,
    output_dir: str | Path,
    conv_mode: str | None = None,
    batch_size: int = 8,
    with_expert: bool | str = False,
    tracking: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run every task that has a records file ``<data_dir>/<task>.json`` or ``.jsonl`` and write one summary.

    Images are looked up under ``<image_root>/<task>`` when that folder exists, else under ``image_root``. With
    ``with_expert``, classification and report tasks run a second time with the expert. The model is loaded once.

    Returns:
        ``{"runs": [results of each run], "summary": markdown}``; ``summary.md``/``results.json``/``per_class.png``
        for the whole suite are written to ``output_dir`` (each run also has its own sub-folder).
    """
    data_dir = Path(data_dir)
    found = {t: p for t in TASKS for p in (data_dir / f"{t}.json", data_dir / f"{t}.jsonl") if p.is_file()}
    if not found:
        raise VilaM3Error(f"No task records in {data_dir}: expected files named <task>.json(l) for {', '.join(TASKS)}.")
    vlm = options.pop("vlm", None) or _load_vlm(
        model_path, conv_mode, options.get("device", "auto"), options.get("dtype", "auto"), options.get("revision"),
        init_distributed(),
    )  # fmt: skip
    runs = []
    for task, path in found.items():
        root = Path(image_root) / task if image_root and (Path(image_root) / task).is_dir() else image_root
        modes: list[bool | str] = [False]
        if with_expert and TASKS[task].kind in ("classification", "report"):
            modes.append(with_expert)
        for mode in modes:
            sub = Path(output_dir) / (task + ("" if mode is False else f"_{_expert_mode(mode)}"))
            runs.append(
                run_evaluation(
                    task, path, root, model_path, sub, conv_mode, batch_size, mode, tracking, vlm=vlm, **options
                )  # fmt: skip
            )
    summary = render_summary(runs)
    if init_distributed().is_main:
        _write_outputs(Path(output_dir), runs)
        print(summary)
    return {"runs": runs, "summary": summary}
