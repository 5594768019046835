"""The hardware a run uses: device, numeric precision, memory, and the switches that make it repeatable."""

import ctypes
import fcntl
import os
import random
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from fmnist.core.settings import Recipe


def check_machine(cfg: Recipe, nproc: int = 1) -> None:
    """Refuse a device or precision this machine lacks, naming the key where params.yaml sets it."""
    cuda = torch.cuda.is_available()
    if cfg.device.startswith("cuda"):
        if not cuda:
            raise cfg.refuse("device", "CUDA is not available here (use auto or cpu)")
        index = int(cfg.device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise cfg.refuse("device", f"only {torch.cuda.device_count()} CUDA device(s) here")
        if ":" in cfg.device and nproc > 1:
            raise cfg.refuse("device", f"names one GPU, but nproc is {nproc} (use auto or cuda)")
    if cuda and cfg.device != "cpu" and nproc > torch.cuda.device_count():
        raise cfg.refuse("nproc", f"only {torch.cuda.device_count()} CUDA device(s) here")
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not cuda)
    if cfg.precision == "fp16" and on_cpu:
        raise cfg.refuse("precision", "fp16 needs CUDA (use auto, fp32 or bf16 on CPU)")


def resolve_device(spec: str) -> torch.device:
    """The device a spec names, a CUDA one always with its index.

    Under torchrun, `cuda` and `auto` are the rank's own GPU (LOCAL_RANK). Otherwise `auto` claims
    a GPU for this process (`claim_gpu`) when CUDA is present, else the CPU, and `cuda` is GPU 0.
    """
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if ":" in spec:
        return torch.device(spec)
    if "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return torch.device("cuda", claim_gpu() if spec == "auto" else 0)


def use(device: torch.device) -> None:
    """Make `device` this process's CUDA device before anything is allocated, so that nothing
    (a collective's buffers, a library's default) lands on GPU 0 by accident."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_MAX = -1, -4  # mallopt's parameter numbers, from glibc's malloc.h


def keep_freed_memory() -> None:
    """Have glibc's malloc keep the memory tensors free for the next ones, rather than hand it
    back to the kernel: every training step frees and reallocates the same activations.

    By default glibc serves each block above 32 MB (a batch's feature maps) from fresh mmap'd
    pages and unmaps it when freed, so the kernel faults in and zeroes those pages again at every
    step: about 60,000 page faults a step for the cnn, 13-16% of its training time on a 2-core
    AMD EPYC. The numbers computed are the same. Without glibc (macOS, musl) a no-op.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(GLIBC_M_MMAP_MAX, 0)  # every block from the heap, which is reused
    mallopt(GLIBC_M_TRIM_THRESHOLD, 2**31 - 1)  # nor is the heap's free top returned (the most an int holds)


CLAIMS = Path(tempfile.gettempdir()) / "fmnist-gpu-claims"
CLAIM_SLOTS = 64  # workers per GPU a machine may run before they stop spreading
_claimed: list = []  # open claim files; the OS drops their locks when this process ends, however it ends


def claim_gpu() -> int:
    """The visible GPU with the fewest of this project's processes on it (ties: the lowest index).

    Each process takes a slot file per GPU under a lock held for its lifetime, filling slot 0 of
    every GPU before slot 1, so N workers that start together (`dvc queue start -j N`) land on N
    GPUs, one each. No CUDA context is opened to choose: reading free memory would open one (about
    0.5 GB) on every GPU in every process. Which GPU it is never changes results (see
    `resolve_precision`) or any hashed file.
    """
    names = gpu_names(torch.cuda.device_count())
    CLAIMS.mkdir(parents=True, exist_ok=True)
    for slot in range(CLAIM_SLOTS):
        for index, name in enumerate(names):
            try:
                claim = open(CLAIMS / f"gpu-{name}.{slot}", "a")
            except OSError:  # another user's claim file, on a shared machine: not ours to take
                continue
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                claim.close()
                continue
            _claimed.append(claim)
            return index
    return 0


def gpu_names(count: int) -> list[str]:
    """Names for the visible GPUs that hold across processes: CUDA_VISIBLE_DEVICES's entries, if set."""
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    return visible[:count] if len(visible) >= count else [str(index) for index in range(count)]


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


def gpus_have_native_bf16() -> bool:
    """Every visible GPU is Ampere (compute capability 8.0) or newer; is_bf16_supported() also counts emulation.

    All of them, not the one a process was given: on a machine with mixed GPUs, `auto` must mean
    the same precision whichever GPU a worker lands on, or results would depend on an unhashed choice.
    """
    return all(torch.cuda.get_device_capability(index) >= (8, 0) for index in range(torch.cuda.device_count()))


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """auto = bf16 where the hardware has it natively (CUDA GPUs since Ampere, CPUs with AVX-512 BF16 or AMX);
    fp16 with loss scaling on older GPUs; fp32 on other CPUs."""
    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if gpus_have_native_bf16() else torch.float16
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
    # Deterministic mode also fills every new tensor with NaN, in case a kernel reads memory it
    # never wrote; none of ours does (reruns match bit for bit without it), and filling a batch's
    # feature maps cost the cnn 1-3% of its step on CPU.
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


def determinism(device: torch.device, ops: list[str]) -> str:
    """What a rerun of the same params on the same machine can promise."""
    if ops:
        return f"not bitwise: no deterministic kernel for {', '.join(ops)}"
    if device.type == "cuda":
        return "deterministic CUDA kernels throughout: same params, same GPU model, same numbers"
    return "bitwise: same params, same machine, same numbers"


def cpu_kind() -> str:
    """PyTorch's CPU kernel level, then the CPU's bf16 instructions: "AVX512 amx_bf16 avx512_bf16" on
    an Intel Xeon with AMX, "AVX2 amx_bf16 avx512_bf16" there under ATEN_CPU_CAPABILITY=avx2."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    return " ".join([torch.backends.cpu.get_cpu_capability(), *sorted({"amx_bf16", "avx512_bf16"} & flags)])


def machine(device: torch.device, dtype: torch.dtype) -> str:
    """The kind of machine and precision that made a result: runs of one kind compare like for like."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_kind()}"
    return f"{where}, {str(dtype).removeprefix('torch.')}"


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
