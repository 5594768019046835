"""Training on two processes with torchrun (gloo on this CPU), on synthetic data, against one process."""

import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from fmnist.core import curves, paths
from fmnist.train import distributed
from tests import project
from tests.project import ROOT

pytestmark = pytest.mark.e2e  # real DVC commands or torchrun: minutes, so outside `make test-fast`

# fp32, so the only difference from one process is the order in which gradients are summed.
PARAMS = {
    "epochs": 4,
    "val_size": 100,
    "batch_size": 64,
    "precision": "fp32",
    "nproc": 2,
    "models": {
        "mlp": {
            "arch": "mlp",
            "hidden": [64, 32],
            "optimizer": "adam",
            "lr": 0.002,
            "augment": {"crop": 2, "flip": True, "erase": 0.25},
        }
    },
}
MODEL = paths.model("mlp")


def probe(repo, *args: str, **env: str):
    """Launch tests.ddp_probe (the train stage, instrumented) on two ranks, as the train stage launches itself."""
    code = (
        "import sys; from fmnist.train import distributed; "
        f"sys.exit(distributed.launch(2, 'tests.ddp_probe', {list(args)}))"
    )
    environment = {**project.environment(), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A project trained once on two ranks through the probe, which logged every rank's writes."""
    repo = project.plain_project(tmp_path_factory.mktemp("ddp") / "repo", PARAMS)
    project.stage(repo, "configure")
    project.stage(repo, "prepare")
    (repo / "writes").mkdir()
    result = probe(repo, "mlp", PROBE_LOG=str(repo / "writes"))
    assert result.returncode == 0, result.stderr
    return repo


def test_only_rank_zero_writes(repo):
    written = (repo / "writes" / "rank0.txt").read_text().split()
    assert {str(p) for p in (MODEL, paths.curves("mlp"), paths.timing("mlp"), paths.resume("mlp"))} <= set(written)
    assert not (repo / "writes" / "rank1.txt").exists()
    assert not (repo / paths.resume("mlp")).exists()  # removed once training completed


def test_two_rank_runs_are_bitwise_equal_and_ignore_a_corrupt_resume_point(repo):
    first = (repo / MODEL).read_bytes()
    (repo / paths.resume("mlp")).write_bytes(b"not a checkpoint")
    result = project.stage(repo, "train", "mlp")  # nproc: 2, so the stage launches torchrun itself
    assert "2 processes" in result.stdout
    assert "a resume point" not in result.stdout  # and no rank waits for a state rank 0 could not read
    assert (repo / MODEL).read_bytes() == first


def test_two_ranks_match_one_process_closely(repo, tmp_path):
    two = curves.read(repo / paths.curves("mlp"))
    single = project.plain_project(tmp_path / "single", {**PARAMS, "nproc": 1})
    project.stage(single, "configure")
    project.stage(single, "prepare")
    project.stage(single, "train", "mlp")
    one = curves.read(single / paths.curves("mlp"))
    assert [row["epoch"] for row in one] == [row["epoch"] for row in two]
    for a, b in zip(one, two):
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], abs=1e-4), (key, a, b)


def test_interrupted_run_resumes_to_the_same_weights(repo):
    expected = (repo / MODEL).read_bytes()
    (repo / MODEL).unlink()
    crashed = probe(repo, "mlp", "--fresh", PROBE_CRASH_EPOCH="2")  # rank 1 dies during epoch 3
    assert crashed.returncode != 0
    assert not (repo / MODEL).exists()
    resumed = project.stage(repo, "train", "mlp")
    assert "a resume point after epoch 2" in resumed.stdout or "a resume point after epoch 3" in resumed.stdout, (
        resumed.stdout
    )
    assert (repo / MODEL).read_bytes() == expected


def test_ctrl_c_stops_every_rank_and_the_run_resumes(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    project.write_params(repo, {**params, "epochs": 300})  # long enough to interrupt after the first
    project.stage(repo, "configure")
    try:
        process = project.start(
            repo,
            sys.executable,
            "-m",
            "stages.train",
            "mlp",
            "--fresh",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        project.wait_for_resume_point(repo, "mlp", process)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the launcher and both ranks get it
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130
        # The launcher and both ranks each say it, and their lines may interleave on the shared stderr.
        said = "interrupted: outputs left complete or absent"
        assert said in stderr and not [
            line for line in stderr.replace(said, "\n").splitlines() if line.strip() and ": epoch " not in line
        ], stderr
        assert "a resume point after epoch" in project.stage(repo, "train", "mlp").stdout
    finally:
        project.write_params(repo, params)
        project.stage(repo, "configure")


def test_a_failed_rank_ends_with_its_own_one_line_error(repo):
    os.rename(repo / paths.train_config("mlp"), repo / "train.json")
    try:
        result = probe(repo, "mlp")  # the ranks meet the missing file; each says so in one line
    finally:
        os.rename(repo / "train.json", repo / paths.train_config("mlp"))
    assert result.returncode == 2
    lines = set(result.stderr.strip().splitlines())
    assert lines == {"error: configs/mlp/train.json: missing (run: python -m stages.configure)"}, result.stderr


def test_batch_size_must_split_evenly_over_the_processes(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["nproc"] = 3
    project.write_params(repo, params)
    try:
        result = project.stage(repo, "configure", check=False)
    finally:
        project.write_params(repo, {**params, "nproc": 2})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params.yaml: batch_size = 64: must be a multiple of nproc (3)"


@pytest.mark.parametrize("size", [1, 2, 4])
def test_the_ranks_slices_tile_each_global_batch(size):
    batch = list(range(256))
    parts = [batch[distributed.World(rank, size).part(len(batch))] for rank in range(size)]
    assert sum(parts, []) == batch


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_with_nccl_match_one_gpu_closely(tmp_path):
    runs = {}
    for nproc in (1, 2):
        repo = project.plain_project(tmp_path / str(nproc), {**PARAMS, "device": "cuda", "nproc": nproc})
        project.stage(repo, "configure")
        project.stage(repo, "prepare")
        project.stage(repo, "train", "mlp")
        runs[nproc] = curves.read(repo / paths.curves("mlp"))
    for a, b in zip(runs[1], runs[2]):
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-3), (a, b)


def test_each_rank_draws_its_own_dropout_masks_and_reruns_repeat_them(tmp_path):
    params = {**PARAMS, "epochs": 1, "models": {"mlp": {**PARAMS["models"]["mlp"], "dropout": 0.5}}}
    repo = project.plain_project(tmp_path / "repo", params)
    project.stage(repo, "configure")
    project.stage(repo, "prepare")
    runs = []
    for run in ("first", "second"):
        (repo / run).mkdir()
        assert probe(repo, "mlp", "--fresh", PROBE_MASKS=str(repo / run)).returncode == 0
        runs.append([(repo / run / f"rank{rank}.txt").read_text() for rank in (0, 1)])
    assert runs[0][0] != runs[0][1]  # rank 1 does not repeat rank 0's masks
    assert runs[0] == runs[1]
