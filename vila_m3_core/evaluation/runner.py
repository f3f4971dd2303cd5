"""Generation for the benchmarks: batched, resumable, and sharded over ``torch.distributed`` ranks.

Every answer is appended to a JSONL file and flushed as soon as its batch is done, so a killed run resumes where it
stopped (records whose answer line exists are skipped; lines with an ``error`` are retried). With several ranks
(``torchrun --nproc_per_node N``; gloo on CPU, nccl on GPU) rank ``r`` answers items ``r, r+N, ...`` into
``answers.rank<r>.jsonl``; the answers are gathered on rank 0, which writes ``answers.jsonl`` in record order.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.tasks import EvalItem

logger = logging.getLogger(__name__)

ANSWERS_FILE = "answers.jsonl"
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run (``world_size`` 1 = single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (no-op for a single process).

    Uses nccl when CUDA is available, gloo otherwise. The collective timeout is long (:data:`COLLECTIVE_TIMEOUT`)
    because ranks wait at the gather while rank 0 scores (GREEN with a 7B judge can take hours).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    from vila_m3_core.distributed import init_process_group

    init_process_group(timeout=COLLECTIVE_TIMEOUT)
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _part_file(output_dir: Path, ctx: DistContext) -> Path:
    return output_dir / (ANSWERS_FILE if ctx.world_size == 1 else f"answers.rank{ctx.rank}.jsonl")


def read_answer_lines(output_dir: Path) -> dict[str, dict[str, Any]]:
    """Answers already on disk (``answers.jsonl`` and any per-rank parts), by question id; the last line wins.

    Truncated last lines (a run killed mid-write) are ignored.
    """
    found: dict[str, dict[str, Any]] = {}
    files = [output_dir / ANSWERS_FILE, *sorted(output_dir.glob("answers.rank*.jsonl"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("ignoring a truncated line in %s", path)
                continue
            found[str(entry["question_id"])] = entry
    return found


#: Turns an item into what the answer function needs (a GenerationRequest, or the agent's inputs).
RequestBuilder = Callable[[EvalItem], Any]
#: Answers a batch of built requests; returns one ``(text, extra fields)`` per request.
AnswerFunction = Callable[[list[Any]], list[tuple[str, dict[str, Any]]]]


def generate_answers(
    items: Sequence[EvalItem],
    build_request: RequestBuilder,
    answer: AnswerFunction,
    output_dir: str | Path,
    batch_size: int = 8,
    ctx: DistContext | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Answer this rank's share of ``items`` (skipping done ones) and return all answers plus timing.

    Args:
        items: every item of the benchmark (each rank takes its stride).
        build_request: item -> request for ``answer``.
        answer: answers a list of requests (one batch) -> ``[(text, extra), ...]``.
        output_dir: where ``answers.jsonl`` (or the rank parts) live.
        batch_size: requests per ``answer`` call.
        ctx: the distributed context (default: single process).

    Returns:
        On rank 0, ``{question_id: answer line}`` for all items answered so far by any rank (gathered), and
        ``{"seconds": generation wall time on this rank, "generated": records answered by this run}``; on other
        ranks the same structure with the gathered answers too (broadcast), so every rank can score.
    """
    ctx = ctx or DistContext()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {qid: line for qid, line in read_answer_lines(out_dir).items() if "error" not in line}
    mine = [item for i, item in enumerate(items) if i % ctx.world_size == ctx.rank and item.id not in done]
    if done:
        logger.info("resuming: %d answers already on disk, %d to generate on rank %d", len(done), len(mine), ctx.rank)
    new: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with _part_file(out_dir, ctx).open("a", encoding="utf-8") as sink:
        bar = tqdm(total=len(mine), desc=f"evaluate[rank {ctx.rank}]", disable=len(mine) == 0)
        for start in range(0, len(mine), max(1, batch_size)):
            batch = mine[start : start + max(1, batch_size)]
            results = _answer_batch(batch, build_request, answer)
            for item, (text, extra) in zip(batch, results, strict=True):
                line = {"question_id": item.id, "prompt": item.prompt, "text": text, "reference": item.reference}
                line.update(item.meta)
                line.update(extra)
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                sink.flush()  # one line per record on disk as soon as it exists: a killed run resumes here
                new[item.id] = line
            bar.update(len(batch))
        bar.close()
    seconds = time.perf_counter() - started
    answers = gather_dict({**done, **new}, ctx)
    return answers, {"seconds": seconds, "generated": float(len(new))}


def _answer_batch(
    batch: list[EvalItem], build_request: RequestBuilder, answer: AnswerFunction
) -> list[tuple[str, dict[str, Any]]]:
    """Answer a batch; when it fails with a user-fixable error, answer one by one to isolate the bad records."""
    try:
        return answer([build_request(item) for item in batch])
    except (VilaM3Error, OSError) as err:
        if len(batch) == 1:
            logger.warning("record %s failed: %s", batch[0].id, err)
            return [("", {"error": str(err)})]
    return [_answer_batch([item], build_request, answer)[0] for item in batch]


def gather_dict(part: dict[str, Any], ctx: DistContext) -> dict[str, Any]:
    """Union of every rank's ``part`` (keys are record ids), available on all ranks (gather to 0, broadcast)."""
    if ctx.world_size == 1:
        return part
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size if ctx.is_main else []
    dist.gather_object(part, gathered if ctx.is_main else None, dst=0)
    merged: list[Any] = [None]
    if ctx.is_main:
        union: dict[str, Any] = {}
        for part in gathered:
            union.update(part)
        merged = [union]
    dist.broadcast_object_list(merged, src=0)
    return merged[0]


def write_answers(output_dir: str | Path, items: Sequence[EvalItem], answers: dict[str, dict[str, Any]]) -> Path:
    """Write ``answers.jsonl`` in record order (atomically) and remove per-rank part files. Rank 0 only."""
    out_dir = Path(output_dir)
    target = out_dir / ANSWERS_FILE
    tmp = target.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as sink:
        for item in items:
            if item.id in answers:
                sink.write(json.dumps(answers[item.id], ensure_ascii=False) + "\n")
    tmp.replace(target)
    for part in out_dir.glob("answers.rank*.jsonl"):
        part.unlink()
    return target
