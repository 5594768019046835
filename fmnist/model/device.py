"""Where a run computes and in what precision: the one place that picks device and dtype."""

import fcntl
import os
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from fmnist.core.settings import Recipe
from fmnist.model import determinism

CLAIMS = Path(tempfile.gettempdir()) / "fmnist-gpu-claims"
_claimed: list = []  # open claim files; the OS drops their locks when this process ends, however it ends


def check_machine(recipe: Recipe, nproc: int = 1) -> None:
    """Refuse a device or precision this machine lacks, naming the key where params.yaml sets it."""
    cuda, count = torch.cuda.is_available(), torch.cuda.device_count()
    if recipe.device.startswith("cuda"):
        if not cuda:
            raise recipe.refuse("device", "CUDA is not available here (use auto or cpu)")
        if int(recipe.device.partition(":")[2] or 0) >= count:
            raise recipe.refuse("device", f"only {count} CUDA device(s) here")
        if ":" in recipe.device and nproc > 1:
            raise recipe.refuse("device", f"names one GPU, but nproc is {nproc} (use auto or cuda)")
    if cuda and recipe.device != "cpu" and nproc > count:
        raise recipe.refuse("nproc", f"only {count} CUDA device(s) here")
    if recipe.precision == "fp16" and (recipe.device == "cpu" or not cuda):
        raise recipe.refuse("precision", "fp16 needs CUDA (use auto, fp32 or bf16 on CPU)")


def resolve_device(spec: str) -> torch.device:
    """The device a spec names, a CUDA one always with its index: under torchrun the rank's own GPU
    (LOCAL_RANK); otherwise `auto` claims a free GPU when CUDA is present, and `cuda` is GPU 0."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if ":" in spec:
        return torch.device(spec)
    if "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return torch.device("cuda", claim_gpu() if spec == "auto" else 0)


def claim_gpu() -> int:
    """The first visible GPU no other process of this project holds, so that queue workers started
    together (`dvc queue start -j N`) land on N GPUs; when all are held, one by process id.

    A claim is an exclusive lock on one file per GPU, held for the process's life; no CUDA context
    is opened to choose. Which GPU it is changes no result (see `resolve_precision`).
    """
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    count = torch.cuda.device_count()
    names = visible[:count] if len(visible) >= count else [str(index) for index in range(count)]
    CLAIMS.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        try:
            claim = open(CLAIMS / f"gpu-{name}", "a")
        except OSError:  # another user's claim file, on a shared machine: not ours to take
            continue
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            claim.close()
            continue
        _claimed.append(claim)
        return index
    return os.getpid() % count


def use(device: torch.device) -> None:
    """Make `device` this process's CUDA device before anything is allocated on GPU 0 by accident."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX, with PyTorch's AVX-512 kernels (ATEN_CPU_CAPABILITY=avx2 turns them off)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512") and "bf16" in determinism.cpu_kind()


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """auto = bf16 where the hardware has it natively (every visible GPU Ampere or newer, so that the
    GPU a worker lands on cannot change it; CPUs with AVX-512 BF16 or AMX), fp16 on older GPUs,
    fp32 on other CPUs."""
    if spec == "auto":
        if device.type == "cuda":
            ampere = all(torch.cuda.get_device_capability(i) >= (8, 0) for i in range(torch.cuda.device_count()))
            return torch.bfloat16 if ampere else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[spec]


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)
