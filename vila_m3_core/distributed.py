"""torch.distributed helpers shared by evaluation and the bundles' multi-GPU overlays.

The same code runs on GPUs (nccl, ``cuda:<LOCAL_RANK>``) and on CPU (gloo), so CI can run
``torchrun --nproc_per_node=2`` on a CPU-only machine. A finished worker ends with :func:`finish_distributed_run`
(see there why it leaves with ``os._exit``); otherwise the process group is destroyed at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def local_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_process_group(timeout: timedelta | None = None) -> str:
    """Initialise the default process group once (nccl on CUDA, gloo on CPU); returns the backend used.

    Args:
        timeout: collective timeout (``None`` = torch's default).
    """
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_device())
        dist.init_process_group(backend=backend, **({"timeout": timeout} if timeout else {}))
        # no barrier at exit: after a failure on one rank the others must not wait for it
        atexit.register(destroy_process_group, barrier=False)
    return backend


def wrap_ddp(network: torch.nn.Module, device: torch.device, **kwargs) -> torch.nn.Module:
    """Wrap ``network`` (already on ``device``) in DDP; ``device_ids`` only for CUDA modules (None on CPU)."""
    device_ids = [device] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(network.to(device), device_ids=device_ids, **kwargs)


def is_rank0() -> bool:
    """True outside distributed runs and on global rank 0."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def destroy_process_group(barrier: bool = True) -> None:
    """Destroy the default process group if one is initialised, after every rank has got here (``barrier``)."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def finish_distributed_run() -> None:
    """End a ``torchrun`` worker whose run succeeded: wait for every rank, destroy the process group, flush the logs
    and leave with ``os._exit(0)``. Does nothing outside a distributed run.

    Python's own shutdown after a gloo run sometimes aborts a worker ("terminate called without an active exception":
    gloo objects that DDP still references are destroyed while the interpreter is torn down; pytorch/pytorch#179291),
    and torchrun then reports a failed run although every rank finished and wrote its outputs. We saw it in about one
    2-process CPU BraTS run in twelve, with and without a barrier before the destroy; skipping the interpreter's
    shutdown avoids it. The multi-GPU bundle overlays call this last, in ``finalize``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    destroy_process_group(barrier=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
