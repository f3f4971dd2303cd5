"""Benchmarks of VILA-M3: metric functions (:mod:`.metrics`) and batched, resumable, distributed runners.

Entry points: :func:`run_evaluation` (one task), :func:`run_suite` (every task with data), and the
``vila-m3 evaluate`` CLI verb (:func:`.cli.evaluate`). See ``docs/evaluation.md``.
"""

from vila_m3_core.evaluation.api import run_evaluation
from vila_m3_core.evaluation.suite import run_suite
from vila_m3_core.evaluation.tasks import TASKS

__all__ = ["TASKS", "run_evaluation", "run_suite"]
