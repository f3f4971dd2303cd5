"""The ``vila-m3 evaluate`` verb."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vila_m3_core.errors import VilaM3Error


def evaluate(
    task: str | None = None,
    data: str | None = None,
    image_root: str | None = None,
    model_path: str = "MONAI/Llama3-VILA-M3-8B",
    output_dir: str = "eval_output",
    conv_mode: str | None = None,
    with_expert: bool | str = False,
    batch_size: int = 8,
    suite: str | None = None,
    data_dir: str | None = None,
    tracking: str | None = None,
    **options: Any,
) -> None:
    """Run a benchmark and print its summary table.

    Usage:
        vila-m3 evaluate --task radvqa --data radvqa_test.json --image_root imgs/ --model_path <dir|repo id>
            [--conv_mode llama_3] [--with_expert] [--batch_size 8] [--output_dir out/]
        vila-m3 evaluate --suite all --data_dir records/ --image_root images/ --model_path ...
        torchrun --nproc_per_node 2 -m vila_m3_core evaluate --task ...   (data-parallel)

    Tasks: radvqa, slake, pathvqa, mimicvqa, report_mimic, report_iu, chestxray14, chexpert. ``--with_expert`` adds
    the CXR expert text (``--expert_predictions <file|dir>`` or computed on the fly); ``--with_expert agent`` lets
    the model call the expert. Other options (see ``run_evaluation``): ``--expert_predictions``,
    ``--report_sampling``, ``--max_new_tokens``, ``--clean_reports``, ``--green_model``, ``--pathvqa_pkl``,
    ``--limit``, ``--device``, ``--dtype``, ``--revision``, ``--tracking mlflow|sqlite:///...|http://...``.
    """
    from vila_m3_core.distributed import finish_distributed_run  # under torchrun: a clean end (see there)
    from vila_m3_core.evaluation.api import run_evaluation
    from vila_m3_core.evaluation.suite import run_suite
    from vila_m3_core.evaluation.tasks import TASKS

    if suite is not None:
        if suite != "all":
            raise VilaM3Error(f"--suite takes 'all', not {suite!r}.")
        run_suite(data_dir or data or ".", image_root, model_path, output_dir, conv_mode, batch_size, with_expert,
                  tracking, **options)  # fmt: skip
        finish_distributed_run()
        return
    if task is None or data is None:
        raise VilaM3Error(
            "Pass --task <name> --data <records> --image_root <folder> --model_path <dir|repo id> "
            "(or --suite all --data_dir <folder>). Tasks: " + ", ".join(TASKS) + ". See docs/evaluation.md."
        )
    result = run_evaluation(task, data, image_root, model_path, output_dir, conv_mode, batch_size, with_expert,
                            tracking, **options)  # fmt: skip
    from vila_m3_core.evaluation.runner import init_distributed

    if init_distributed().is_main:
        print((Path(output_dir) / "summary.md").read_text())
        headline = result["metrics"]["headline"]
        print(json.dumps({"task": task, headline: result["metrics"][headline]}))
    finish_distributed_run()
