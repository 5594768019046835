"""Repeatable runs and their record: seeds and deterministic kernels, the operations that had none,
and the kind of machine that made a result (a rerun on the same kind gives the same bytes)."""

import os
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def make_deterministic(seed: int, compiled: bool = False) -> None:
    """Seed every generator and ask PyTorch for deterministic kernels (CUDA ones where they exist).

    CUBLAS_WORKSPACE_CONFIG, which cuBLAS reads once, is set when `fmnist` is first imported.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    if compiled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # The public call also sets TorchInductor's flag, and importing TorchInductor to do so costs
        # every stage seconds; eager kernels read only this switch.
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN, in case a kernel reads memory it
    # never wrote; none of ours does (reruns match bit for bit without it), and the filling costs
    # time in every step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False


NO_DETERMINISTIC_KERNEL = " does not have a deterministic implementation"


@contextmanager
def nondeterministic_ops() -> Iterator[list[str]]:
    """Collect the operations that ran without a deterministic kernel (PyTorch warns about each).

    Deterministic mode is on with warn_only=True, so such an op (adaptive pooling's CUDA backward,
    for one) runs anyway; this names it, so a run's determinism claim says what actually held. Each
    op is kept once however often it warns; other warnings pass through as they come, and the list
    is complete even when the block raises.
    """
    found: list[str] = []
    ops: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # also forgets which warnings were shown before the block
        passed_on = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if NO_DETERMINISTIC_KERNEL in str(message):
                ops.add(str(message).split(NO_DETERMINISTIC_KERNEL)[0])
            else:
                passed_on(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        try:
            yield found
        finally:
            found[:] = sorted(ops)


def promise(device: torch.device, ops: list[str]) -> str:
    """What a rerun of the same params on the same machine can promise."""
    if ops:
        return f"not bitwise: no deterministic kernel for {', '.join(ops)}"
    if device.type == "cuda":
        return "deterministic CUDA kernels throughout: same params, same GPU model, same numbers"
    return "bitwise: same params, same machine, same numbers"


def cpu_kind() -> str:
    """PyTorch's CPU kernel level, then the CPU's bf16 instructions: "AVX512 amx_bf16 avx512_bf16" on
    an Intel Xeon with AMX, "AVX2 amx_bf16 avx512_bf16" there under ATEN_CPU_CAPABILITY=avx2, and
    oneDNN's cap where one is set ("... onednn=AVX512_CORE_BF16": AVX-512 BF16 without AMX)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    capped = [f"onednn={cap}"] if cap and cap != "ALL" else []
    return " ".join([torch.backends.cpu.get_cpu_capability(), *sorted({"amx_bf16", "avx512_bf16"} & flags), *capped])


def machine(device: torch.device, dtype: torch.dtype) -> str:
    """The kind of machine and precision that made a result: runs of one kind compare like for like."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_kind()}"
    return f"{where}, {str(dtype).removeprefix('torch.')}"


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
