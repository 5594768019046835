"""Device and precision choice with torch.cuda mocked (no GPU here; the logic is the same), and deterministic mode."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from fmnist.model import determinism, device


@pytest.fixture
def four_gpus(monkeypatch, tmp_path):
    """Four visible GPUs, none of them real: the CUDA surface the code calls, faked and recorded.

    monkeypatch undoes every fake after the test (tests/conftest.py checks that none leaks).
    """
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(torch.device(d)))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))

    def no_context(*args, **kwargs):
        raise AssertionError("choosing a GPU must not open a CUDA context on any")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_context)
    monkeypatch.setattr(device, "CLAIMS", tmp_path / "claims")
    monkeypatch.setattr(device, "_claimed", [])
    for name in ("LOCAL_RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return calls


def release_claims():
    for claim in device._claimed:
        claim.close()
    device._claimed.clear()


def test_workers_that_start_together_spread_one_per_gpu_then_share(four_gpus):
    assert [device.resolve_device("auto").index for _ in range(4)] == [0, 1, 2, 3]
    assert device.resolve_device("auto").index in range(4)  # every GPU held: shared
    device._claimed.pop(2).close()  # the worker on GPU 2 ends
    assert device.resolve_device("auto") == torch.device("cuda", 2)
    release_claims()


def test_a_claim_held_by_another_process_is_respected_and_freed_when_it_ends(four_gpus):
    code = (
        "import sys, time; from pathlib import Path; from fmnist.model import device;"
        "device.CLAIMS = Path(sys.argv[1]); device.torch.cuda.device_count = lambda: 4;"
        "print(device.claim_gpu(), flush=True); time.sleep(30)"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, str(device.CLAIMS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert other.stdout.readline().strip() == "0"
        assert device.claim_gpu() == 1
    finally:
        other.kill()
        other.wait()
    release_claims()
    assert device.claim_gpu() == 0  # a killed process holds nothing
    release_claims()


def test_a_claim_file_this_process_cannot_open_is_passed_over(four_gpus):
    """As another user's claim file on a shared machine would be (here: a directory in its place)."""
    (device.CLAIMS / "gpu-0").mkdir(parents=True)
    assert device.claim_gpu() == 1
    release_claims()


def test_claims_name_the_physical_gpu_when_cuda_visible_devices_is_set(four_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1,0,2")
    assert device.claim_gpu() == 0
    assert (device.CLAIMS / "gpu-3").exists()
    release_claims()


@pytest.mark.parametrize("spec", ["auto", "cuda"])
def test_each_torchrun_rank_takes_its_own_gpu(four_gpus, monkeypatch, spec):
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert device.resolve_device(spec) == torch.device("cuda", 2)
    assert not device._claimed  # torchrun gave each rank its GPU: nothing to claim


def test_a_cuda_device_always_has_an_index_and_is_made_current_once(four_gpus):
    from fmnist.model import inference

    runtime = inference.Runtime.create("cuda", "auto", "mlp")
    assert runtime.device == torch.device("cuda", 0) and four_gpus == [torch.device("cuda", 0)]


def test_an_explicit_device_is_kept(four_gpus):
    assert device.resolve_device("cuda:3") == torch.device("cuda", 3)
    assert device.resolve_device("cpu") == torch.device("cpu")


def test_auto_precision_follows_every_visible_gpu_not_the_one_picked(four_gpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (7, 5) if index == 3 else (8, 0))
    assert {device.resolve_precision("auto", torch.device("cuda", i)) for i in range(4)} == {torch.float16}


@pytest.mark.parametrize(
    "capability, expected",
    [((7, 0), torch.float16), ((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)
def test_auto_precision_uses_bf16_only_where_a_gpu_has_it_natively(four_gpus, monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    assert device.resolve_precision("auto", torch.device("cuda", 0)) == expected


def test_an_avx2_capability_means_no_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not device.cpu_has_native_bf16()
    assert device.resolve_precision("auto", torch.device("cpu")) == torch.float32


NONDETERMINISTIC = "adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but ..."


def test_operations_without_a_deterministic_kernel_are_named_and_others_pass_through():
    shown = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *rest: shown.append(str(message))
        with determinism.nondeterministic_ops() as ops:
            for _ in range(1000):  # one warning per training step
                warnings.warn(NONDETERMINISTIC)
            warnings.warn("unrelated")
            assert shown == ["unrelated"]  # as it came, not held until the block ends
    assert ops == ["adaptive_max_pool2d_backward_cuda"]
    assert determinism.promise(torch.device("cuda", 0), ops).startswith("not bitwise")
    assert determinism.promise(torch.device("cuda", 0), []).startswith("deterministic CUDA kernels")
    assert determinism.promise(torch.device("cpu"), []).startswith("bitwise")


def test_the_ops_seen_are_kept_when_the_block_raises():
    with pytest.raises(KeyboardInterrupt), determinism.nondeterministic_ops() as ops:
        warnings.warn(NONDETERMINISTIC)
        raise KeyboardInterrupt
    assert ops == ["adaptive_max_pool2d_backward_cuda"]


def test_deterministic_mode_is_on_without_importing_torchinductor_or_filling_new_tensors():
    """Eager stages need only the kernel switch; importing TorchInductor would cost every stage
    seconds, and NaN-filling every new tensor a few percent of every step."""
    script = (
        "import sys, torch; from fmnist.model import determinism; determinism.make_deterministic(0); "
        "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
        "torch.utils.deterministic.fill_uninitialized_memory, 'torch._inductor' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert result.stdout.split() == ["True", "True", "False", "False"]
