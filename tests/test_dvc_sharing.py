"""End to end with the real DVC commands: experiments, diffs, reports, queues and sharing through
remotes, in a temporary git repository on synthetic data (tests/dvc_repo.py)."""

import json
import shutil
import subprocess
import sys
import time

import pytest
import torch
import yaml
from PIL import Image

from fmnist.core import paths
from tests import project
from tests.dvc_repo import MODELS, baseline, batch_size_branch, clean, every, experiments, ran, repo, reset, set_param  # noqa: F401 (fixtures)
from tools.project import ROOT

pytestmark = pytest.mark.e2e  # real DVC commands: minutes, so outside `make test-fast`


def test_experiment_with_new_batch_size_retrains_every_model_but_keeps_data(repo, batch_size_branch):
    stages = ran(batch_size_branch)
    assert every("train", "evaluate") | {"summarize"} <= stages
    assert not stages & {"download", "prepare"}
    assert "bs128" in experiments(repo)


def test_experiment_with_a_bad_value_fails_with_the_one_line_error(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.lr=-1", check=False)
    assert result.returncode != 0
    assert "error: params.yaml: models.cnn.lr = -1: must be a number in (0, 10]" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_metrics_hold_numbers_only_and_exp_show_has_no_string_columns(repo):
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    metrics = shown[0]["data"]["metrics"]
    assert set(metrics) == {f"metrics/{name}.json" for name in MODELS}  # timing and details sit in reports/
    for values in metrics.values():
        assert all(isinstance(value, (int, float)) for value in values["data"].values()), values
    assert json.loads((repo / "reports" / "provenance" / "cnn.json").read_text())["recipe"]


def test_metrics_and_plots_diff_between_revisions(repo, batch_size_branch):
    diff = json.loads(project.dvc(repo, "metrics", "diff", "main", "bs128", "--json").stdout)
    assert "metrics/cnn.json" in diff
    assert set(diff["metrics/cnn.json"]["test_loss"]) == {"old", "new", "diff"}

    plots = json.loads(project.dvc(repo, "plots", "diff", "main", "bs128", "--json").stdout)
    accuracy = plots["data"]["Validation accuracy per epoch"][0]
    assert set(accuracy["revisions"]) == {"main", "bs128"}
    assert "plots/confusion/cnn.csv" in plots["data"]


def test_queued_grid_runs_on_two_workers_and_shows_in_exp_show(repo):
    before = experiments(repo)
    project.dvc(repo, "exp", "run", "--queue", "-S", "models.logreg.lr=0.01,0.02")
    # Not captured: DVC's worker launcher keeps the caller's stdout open until the workers exit, so a
    # captured `queue start` would wait for every experiment, and forever if a worker never stopped.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        env=project.environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            status = project.dvc(repo, "queue", "status").stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(3)
    finally:
        project.dvc(repo, "queue", "stop", check=False)
    assert status.count("Success") == 2, status
    queued = [data for name, data in experiments(repo).items() if name not in before]
    learning_rates = sorted(
        run["params"]["params.yaml"]["data"]["models"]["logreg"]["lr"]
        for run in queued
        if "test_accuracy" in run["metrics"]["metrics/logreg.json"]["data"]
    )
    assert learning_rates == [0.01, 0.02]


def commit_shared_remote(repo, remote, branch: str) -> None:
    """A default DVC remote in the committed config, on a branch of its own (main stays as it was)."""
    project.run(repo, "git", "checkout", "-qb", branch)
    project.dvc(repo, "remote", "add", "-d", "shared", str(remote))
    project.run(repo, "git", "commit", "-qam", "shared remote")


def test_the_projects_directory_remote_takes_a_clone_to_predictions_without_training(repo):
    """The committed .dvc/config's remote, a directory beside the checkout: push, clone beside it,
    pull, predict. (The remote sits outside `repo`, so another test's copy never sees it.)"""
    shutil.rmtree(repo.parent / "fmnist-dvc-storage", ignore_errors=True)
    project.run(repo, "git", "checkout", "-qb", "pull-test")
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    project.run(repo, "git", "commit", "-qam", "the project's remote")
    project.dvc(repo, "push", "--run-cache")
    clone = repo.parent / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    project.run(repo.parent, "git", "clone", "-q", "-b", "pull-test", str(repo), str(clone))
    assert not (clone / paths.model("cnn")).exists()
    project.dvc(clone, "pull", "--run-cache")
    for path in (paths.RAW / "train-images-idx3-ubyte", paths.PREPARED / "train.pt", paths.model("cnn")):
        assert (clone / path).is_file(), path
    assert "up to date" in project.dvc(clone, "status").stdout
    assert ran(project.dvc(clone, "repro").stdout) == set()

    shirt = Image.new("L", (28, 28), 255)
    shirt.paste(60, (6, 4, 22, 26))  # a dark garment on a light background, as a shop photo
    shirt.save(clone / "shirt.png")
    predicted = project.run(clone, sys.executable, "-m", "fmnist", "predict", "--json", "shirt.png")
    assert json.loads(predicted.stdout.splitlines()[0])["file"].endswith("shirt.png")


def test_registered_model_is_fetched_with_dvc_artifacts_get(repo, tmp_path):
    commit_shared_remote(repo, tmp_path / "remote", "artifacts-test")
    project.dvc(repo, "push")
    # A version in the model registry is a git tag in GTO's format (what Studio writes on "Register").
    project.run(repo, "git", "tag", "-a", "mlp-small@v1.0.0", "-m", "Registering artifact mlp-small version v1.0.0")
    fetched = tmp_path / "fetched.pt"
    project.dvc(tmp_path, "artifacts", "get", str(repo), "mlp-small", "--rev", "v1.0.0", "-o", str(fetched))
    assert fetched.read_bytes() == (repo / paths.model("mlp_small")).read_bytes()
    saved = torch.load(fetched, weights_only=True)
    assert saved["arch"] == "mlp" and saved["state_dict"]


def test_experiment_pushed_to_origin_is_applied_in_a_second_clone_without_retraining(repo, tmp_path):
    origin, storage, clone = tmp_path / "origin.git", tmp_path / "storage", tmp_path / "clone"
    project.run(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    project.run(repo, "git", "remote", "add", "origin", str(origin))
    project.run(repo, "git", "push", "-q", "origin", "main")
    project.dvc(repo, "remote", "add", "--local", "-d", "storage", str(storage))
    project.dvc(repo, "push")
    project.dvc(repo, "exp", "run", "-n", "shared-lr", "-S", "models.logreg.lr=0.02")
    expected = (repo / paths.test_metrics("logreg")).read_text()
    project.dvc(repo, "exp", "push", "origin", "shared-lr")  # git refs to origin, outputs to the DVC remote

    project.run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    project.dvc(clone, "remote", "add", "--local", "-d", "storage", str(storage))
    project.dvc(clone, "exp", "pull", "origin", "shared-lr")
    assert "shared-lr" in project.dvc(clone, "exp", "list", "--name-only").stdout
    project.dvc(clone, "exp", "apply", "shared-lr")
    assert (clone / paths.test_metrics("logreg")).read_text() == expected
    assert yaml.safe_load((clone / "params.yaml").read_text())["models"]["logreg"]["lr"] == 0.02
    assert (clone / paths.model("logreg")).read_bytes() == (repo / paths.model("logreg")).read_bytes()
    assert "up to date" in project.dvc(clone, "status").stdout
    assert ran(project.dvc(clone, "repro").stdout) == set()


def test_fresh_clone_restores_a_teammates_run_from_the_remote_run_cache(repo, tmp_path):
    """What the pull-request workflow relies on: params someone ran and pushed are not trained again."""
    remote = str(tmp_path / "team-remote")
    project.dvc(repo, "remote", "add", "--local", "team", remote)
    project.dvc(repo, "exp", "run", "-S", "models.logreg.lr=0.02")
    project.dvc(repo, "push", "-r", "team", "--run-cache")
    reset(repo)
    project.dvc(repo, "remote", "add", "--local", "team", remote)
    project.dvc(repo, "push", "-r", "team")  # the committed outputs too, as CI on main would push them

    clone = tmp_path / "clone"
    project.run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    project.dvc(clone, "remote", "add", "--local", "-d", "team", remote)
    set_param(clone, "models.logreg.lr", 0.02)
    result = project.dvc(clone, "repro", "--pull")
    assert ran(result.stdout) == {"evaluate@logreg", "summarize"}  # train@logreg came from the run-cache
    assert "up to date" in project.dvc(clone, "status").stdout
