"""The hardware a run uses: device, numeric precision, and the switches that make it repeatable."""

import os
import random
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch


def resolve_device(spec: str) -> torch.device:
    """auto = this process's GPU (see `pick_gpu`) when CUDA is present, else the CPU."""
    if spec == "auto":
        return torch.device("cuda", pick_gpu()) if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(spec)


def pick_gpu() -> int:
    """The rank's GPU under torchrun (LOCAL_RANK); else the visible GPU with the most free memory.

    So `dvc queue start -j N` on an N-GPU machine spreads its experiments over the GPUs. Free memory
    is compared in GiB, and ties go by process id, so workers that start together still spread.
    Which GPU runs a model never changes its results or any hashed file.
    """
    count = torch.cuda.device_count()
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"]) % count
    free_gib = [torch.cuda.mem_get_info(index)[0] // 2**30 for index in range(count)]
    most = max(free_gib)
    candidates = [index for index, free in enumerate(free_gib) if free == most]
    return candidates[os.getpid() % len(candidates)]


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX-512 BF16 or AMX) that PyTorch's kernels use.

    Emulated bf16 is slower than fp32. PyTorch's capability check also honours
    ATEN_CPU_CAPABILITY=avx2, which makes such a CPU behave like an AVX2-only one.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    return native and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def gpu_has_native_bf16(device: torch.device) -> bool:
    """Ampere (compute capability 8.0) and newer; torch.cuda.is_bf16_supported() also counts emulation."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """auto = bf16 where the hardware has it natively (CUDA GPUs since Ampere, CPUs with AVX-512 BF16 or AMX);
    fp16 with loss scaling on older GPUs; fp32 on other CPUs."""
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if gpu_has_native_bf16(device) else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[spec]


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_deterministic(seed: int, compiled: bool = False) -> None:
    """Seed every generator and ask PyTorch for deterministic kernels (CUDA ones where they exist).

    CUBLAS_WORKSPACE_CONFIG, which cuBLAS reads once, is set when `fmnist` is first imported.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    if compiled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # The public call also sets TorchInductor's flag, and importing TorchInductor to do so
        # costs 1.5-2 s per stage; eager kernels read only this switch.
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


NO_DETERMINISTIC_KERNEL = " does not have a deterministic implementation"


@contextmanager
def nondeterministic_ops() -> Iterator[list[str]]:
    """Collect the operations that ran without a deterministic kernel (PyTorch warns about each).

    Deterministic mode is on with warn_only=True, so such an op (adaptive pooling's CUDA backward,
    for one) runs anyway; this names it, so a run's determinism claim says what actually held.
    """
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    for warning in caught:
        message = str(warning.message)
        if NO_DETERMINISTIC_KERNEL in message:
            found.append(message.split(NO_DETERMINISTIC_KERNEL)[0])
        else:  # not ours to swallow
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    found[:] = sorted(set(found))


def determinism(device: torch.device, ops: list[str]) -> str:
    """What a rerun of the same params on the same machine can promise."""
    if ops:
        return f"not bitwise: no deterministic kernel for {', '.join(ops)}"
    if device.type == "cuda":
        return "deterministic CUDA kernels throughout: same params, same GPU model, same numbers"
    return "bitwise: same params, same machine, same numbers"


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
