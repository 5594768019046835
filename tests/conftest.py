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


# Two workers take a file at a time (make test), so a long file that starts last is the suite's
# tail: the longest start first. test_dvc builds the DVC repository the next three share, and
# test_stages, which needs none, runs beside it rather than waiting for it.
LONGEST_FIRST = (
    "test_dvc.py",
    "test_stages.py",
    "test_dvc_sharing.py",
    "test_compare.py",
    "test_distributed.py",
    "test_two_nodes.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
