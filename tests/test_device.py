"""Device and precision choice with torch.cuda mocked (no GPU here; the logic is the same), and deterministic mode."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from fmnist import device

GIB = 2**30


@pytest.fixture
def four_gpus(monkeypatch):
    """Four visible GPUs with 10, 30, 20 and 30 GiB free."""
    free = {0: 10 * GIB, 1: 30 * GIB, 2: 20 * GIB, 3: 30 * GIB}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (free[index], 80 * GIB))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return free


def test_auto_picks_a_gpu_with_the_most_free_memory(four_gpus):
    assert device.resolve_device("auto") in (torch.device("cuda", 1), torch.device("cuda", 3))


def test_workers_starting_together_spread_over_equally_free_gpus(four_gpus, monkeypatch):
    picked = set()
    for pid in (100, 101):
        monkeypatch.setattr(device.os, "getpid", lambda pid=pid: pid)
        picked.add(device.pick_gpu())
    assert picked == {1, 3}


def test_torchrun_rank_takes_its_own_gpu(four_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert device.resolve_device("auto") == torch.device("cuda", 2)


def test_an_explicit_device_is_kept(four_gpus):
    assert device.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert device.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_uses_bf16_only_where_a_gpu_has_it_natively(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    assert device.resolve_precision("auto", torch.device("cuda", 0)) == expected


def test_an_avx2_capability_means_no_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not device.cpu_has_native_bf16()
    assert device.resolve_precision("auto", torch.device("cpu")) == torch.float32


def test_operations_without_a_deterministic_kernel_are_named_and_others_pass_through():
    with pytest.warns(UserWarning, match="unrelated"):
        with device.nondeterministic_ops() as ops:
            warnings.warn("adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but ...")
            warnings.warn("adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but ...")
            warnings.warn("unrelated")
    assert ops == ["adaptive_max_pool2d_backward_cuda"]
    assert device.determinism(torch.device("cuda", 0), ops).startswith("not bitwise")
    assert device.determinism(torch.device("cuda", 0), []).startswith("deterministic CUDA kernels")
    assert device.determinism(torch.device("cpu"), []).startswith("bitwise")


def test_deterministic_mode_is_on_without_importing_torchinductor():
    """Eager stages need only the kernel switch; importing TorchInductor would cost every stage seconds."""
    script = ("import sys, torch; from fmnist import device; device.make_deterministic(0); "
              "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
              "'torch._inductor' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[1])
    assert result.stdout.split() == ["True", "True", "False"]
