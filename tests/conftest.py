"""Shared by every test: fakes of the CUDA surface must not outlive the test that made them."""

import pytest
import torch

CUDA_SURFACE = ("is_available", "device_count", "set_device", "get_device_capability", "mem_get_info")


@pytest.fixture(autouse=True)
def no_leaked_cuda_fakes():
    real = {name: getattr(torch.cuda, name) for name in CUDA_SURFACE}
    yield
    leaked = [name for name, function in real.items() if getattr(torch.cuda, name) is not function]
    assert not leaked, f"torch.cuda fakes outlived their test: {leaked}"
