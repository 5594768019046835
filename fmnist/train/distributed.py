"""Training on several processes with torchrun (DDP): who this process is, and the few collectives it needs.

Every rank walks the same seeded order of global batches and takes its own contiguous slice of each,
so the global batch size, the schedule and the steps per epoch do not depend on the process count.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files and shows progress; the others only compute."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's share of n items (n is a multiple of the world size)."""
        share = n // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(values)
        return values

    def gather(self, value: Any) -> list:
        """Every rank's value, in rank order, on every rank."""
        if self.size == 1:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank: one decision, so no rank waits for a collective the others skip."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched() -> bool:
    """Whether torchrun (or another launcher of the same protocol) started this process."""
    return "WORLD_SIZE" in os.environ


@contextmanager
def world(device: torch.device) -> Iterator[World]:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU); alone when not launched.

    On CUDA, `device` is this rank's own GPU, already made current (device.use), as NCCL needs.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        yield World()
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield World(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def launch(nproc: int, module: str, args: list[str]) -> int:
    """Run `python -m module args` as nproc local processes through torchrun; 0 when every rank succeeded.

    In this process rather than as a `torchrun` command, so a failed rank ends with its own one-line
    error and exit status instead of torchrun's traceback.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun would set one thread per rank, with a warning; share the cores out instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # The ranks say what failed; torchrun's loggers each set their own level, so quiet every one.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    options = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", module, *args])
    try:
        run(options)
    except ChildFailedError as error:
        _, failure = error.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException:  # Ctrl-C or SIGTERM: torchrun has stopped the ranks; report it like any stage
        raise KeyboardInterrupt from None
    return 0
