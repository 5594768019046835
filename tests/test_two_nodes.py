"""One model under torchrun as two "nodes" of one process each (c10d rendezvous on 127.0.0.1, gloo),
against the standalone `nproc: 2` run: the same weights, and only global rank 0 writes."""

import socket
import subprocess
import sys

import pytest

from fmnist.core import paths
from tests import project
from tests.project import ROOT

pytestmark = pytest.mark.e2e  # torchrun processes of their own: outside `make test-fast`

PARAMS = {
    "epochs": 2,
    "val_size": 100,
    "batch_size": 64,
    "precision": "fp32",
    "device": "cpu",
    "nproc": 2,
    "models": {"mlp": {"arch": "mlp", "hidden": [64, 32], "optimizer": "adam", "lr": 0.002, "augment": {"flip": True}}},
}


def prepared(repo):
    project.plain_project(repo, PARAMS)
    for stage in ("configure", "prepare"):
        project.stage(repo, stage)
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(repo, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
    command += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes"]
    command += ["--module", "stages.train", "mlp"]
    environment = {**project.environment(), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=repo, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_nodes_over_loopback_train_as_one_two_process_run_and_only_rank_0_writes(tmp_path):
    standalone = prepared(tmp_path / "standalone")
    project.stage(standalone, "train", "mlp")  # nproc: 2 launches two local processes

    nodes = [prepared(tmp_path / f"node{i}") for i in range(2)]
    port = free_port()
    running = [node(repo, port) for repo in nodes]
    outputs = [process.communicate(timeout=300)[0].decode() for process in running]
    assert all(process.returncode == 0 for process in running), outputs

    writers = [repo for repo in nodes if (repo / paths.model("mlp")).exists()]
    assert len(writers) == 1, "exactly one node, global rank 0's, writes the model"
    [writer] = writers
    [other] = [repo for repo in nodes if repo is not writer]
    assert not (other / paths.curves("mlp")).exists() and not (other / paths.timing("mlp")).exists()
    assert (writer / paths.model("mlp")).read_bytes() == (standalone / paths.model("mlp")).read_bytes()
