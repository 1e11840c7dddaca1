"""Multi-process training with ``torch.distributed`` (DistributedDataParallel under torchrun).

``torchrun --nproc_per_node N -m irstd_bench train ...`` starts N copies of the same command
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`init_distributed` sees them and
joins the process group (``nccl`` on CUDA, ``gloo`` on the CPU). Every rank trains on its share
of each epoch (``DistributedSampler``); only rank 0 validates and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from irstd_bench.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes
    ----------
    rank, local_rank, world_size : int
    device : torch.device
        The device this process trains on (``cuda:LOCAL_RANK`` under torchrun with CUDA).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_object(self, value, src: int = 0):
        """``value`` of rank ``src`` on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=src)
        return box[0]


def resolve_device(request: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda``/``cuda:N``/``cpu`` are checked.

    Raises :class:`InputError` when CUDA is asked for but absent (or the index does not exist).
    """
    request = (request or "auto").strip().lower()
    if request == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if request == "cpu":
        return torch.device("cpu")
    if request == "cuda" or request.startswith("cuda:") or request.isdigit():
        if not torch.cuda.is_available():
            raise InputError(f"--device {request}: CUDA is not available on this machine (use --device cpu)")
        number = request.split(":", 1)[1] if ":" in request else (request if request.isdigit() else "")
        if number and not number.isdigit():
            raise InputError(f"--device {request!r}: expected auto, cpu, cuda or cuda:N")
        index = int(number) if number else local_rank
        if index >= torch.cuda.device_count():
            raise InputError(
                f"--device {request}: only {torch.cuda.device_count()} CUDA device(s) on this machine"
            )
        return torch.device(f"cuda:{index}")
    raise InputError(f"--device {request!r}: expected auto, cpu, cuda or cuda:N")


def launched_by_torchrun() -> bool:
    """True when ``WORLD_SIZE`` > 1 is set by a launcher (torchrun, torch.distributed.run)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_request: str) -> DistContext:
    """Join the process group when launched by torchrun; otherwise a single-process context."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device_request))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ["WORLD_SIZE"])
    device = resolve_device(device_request, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
