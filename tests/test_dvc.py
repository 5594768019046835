"""End to end with the real DVC commands, in a temporary git repository on synthetic data."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests import project

@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A project whose whole pipeline has run once and been committed."""
    repo = project.dvc_project(tmp_path_factory.mktemp("dvc") / "repo")
    result = project.dvc(repo, "repro")
    assert "Running stage 'summarize'" in result.stdout
    project.run(repo, "git", "add", "-A")
    project.run(repo, "git", "commit", "-qm", "baseline run")
    return repo


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_second_repro_runs_nothing(repo):
    result = project.dvc(repo, "repro")
    assert ran(result.stdout) == set()
    assert "Data and pipelines are up to date" in result.stdout


def test_status_is_clean_and_lock_lists_every_model(repo):
    assert "up to date" in project.dvc(repo, "status").stdout
    lock = (repo / "dvc.lock").read_text()
    for name in ("logreg", "mlp_small", "mlp", "cnn", "resnet18"):
        assert f"train@{name}:" in lock and f"evaluate@{name}:" in lock


def set_param(repo, dotted_key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, key = dotted_key.split(".")
    section = params
    for parent in parents:
        section = section[parent]
    section[key] = value
    project.write_params(repo, params)


def test_rerunning_earlier_params_restores_from_run_cache(repo):
    """Params that ran before train nothing: DVC's run-cache restores the model and its results."""
    started = time.perf_counter()
    changed = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.005")
    first = time.perf_counter() - started
    assert ran(changed.stdout) == {"train@mlp_small", "evaluate@mlp_small", "summarize"}  # that model alone

    started = time.perf_counter()
    back = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.001")  # the committed value
    second = time.perf_counter() - started
    assert ran(back.stdout) == {"summarize"}
    for stage in ("train@mlp_small", "evaluate@mlp_small"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back.stdout
    assert second < first
    # The restored results are the committed ones, byte for byte.
    assert project.run(repo, "git", "status", "--porcelain", "metrics", "plots", "reports").stdout == ""
    reset(repo)


def test_interrupted_repro_shows_changed_then_completes(repo):
    set_param(repo, "models.cnn.lr", 0.02)
    # Its own process group, so the signal reaches DVC and the stage it runs, as Ctrl-C would.
    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=project.environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    curves = repo / "results" / "cnn" / "curves.csv"
    deadline = time.time() + 120
    while curves.exists() and time.time() < deadline:  # DVC removes the outputs it is about to redo
        time.sleep(0.05)
    time.sleep(1.0)  # mid-training
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    assert process.returncode != 0
    assert "train@cnn" in project.dvc(repo, "status").stdout
    assert not [p for folder in ("models", "results", "metrics", "plots") for p in (repo / folder).rglob("*.tmp")]
    assert "train@cnn" in ran(project.dvc(repo, "repro").stdout)
    assert "up to date" in project.dvc(repo, "status").stdout
    reset(repo)


def test_experiment_with_new_batch_size_retrains_but_keeps_data(repo):
    result = project.dvc(repo, "exp", "run", "-n", "bs128", "-S", "batch_size=128")
    stages = ran(result.stdout)
    assert {"train@logreg", "train@cnn", "evaluate@resnet18", "summarize"} <= stages
    assert not stages & {"download", "prepare"}

    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    names = [exp.get("name") for exp in experiments]
    assert "bs128" in names
    reset(repo)


def test_experiment_with_a_bad_value_fails_with_the_one_line_error(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.lr=-1", check=False)
    assert result.returncode != 0
    assert "error: params.yaml: models.cnn.lr = -1: must be a number in (0, 10]" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    reset(repo)


def test_metrics_and_plots_diff_between_revisions(repo):
    project.dvc(repo, "exp", "apply", "bs128")
    project.run(repo, "git", "add", "-A")
    project.run(repo, "git", "commit", "-qm", "batch size 128")
    diff = json.loads(project.dvc(repo, "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert "metrics/cnn.json" in diff
    assert set(diff["metrics/cnn.json"]["test_loss"]) == {"old", "new", "diff"}

    plots = json.loads(project.dvc(repo, "plots", "diff", "HEAD~1", "HEAD", "--json").stdout)
    accuracy = plots["data"]["Validation accuracy per epoch"][0]
    assert set(accuracy["revisions"]) == {"HEAD~1", "HEAD"}
    assert "plots/confusion/cnn.csv" in plots["data"]


def test_report_numbers_match_dvc_metrics_diff(repo):
    project.run(repo, sys.executable, "-m", "stages.report", "--base", "HEAD~1", "--out", "report")
    report = json.loads((repo / "report" / "report.json").read_text())
    diff = json.loads(project.dvc(repo, "metrics", "diff", "HEAD~1", "--all", "--json").stdout)
    assert report["params"] == [{"param": "batch_size", "base": 64, "new": 128}]
    assert len(report["metrics"]) == 5 * 5  # 4 quality metrics and the training time, per model
    for row in report["metrics"]:
        assert diff[row["file"]][row["metric"]] == {"old": row["base"], "new": row["new"], "diff": row["change"]}
    text = (repo / "report" / "report.md").read_text()
    assert "| `batch_size` | 64 | 128 |" in text and "![curves](curves.png)" in text
    assert (repo / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_says_when_the_base_has_no_metrics(repo):
    first = project.run(repo, "git", "rev-list", "--max-parents=0", "HEAD").stdout.strip()
    project.run(repo, sys.executable, "-m", "stages.report", "--base", first, "--out", "report")
    assert f"The base `{first}` has no metrics" in (repo / "report" / "report.md").read_text()


def test_queued_grid_runs_on_two_workers_and_shows_in_exp_show(repo):
    project.dvc(repo, "exp", "run", "--queue", "-S", "models.logreg.lr=0.01,0.02", "-S", "models.logreg.epochs=1,2")
    project.dvc(repo, "queue", "start", "-j", "2")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = project.dvc(repo, "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(3)
    assert status.count("Success") == 4, status
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    accuracies = [exp["revs"][0]["data"]["metrics"]["metrics/logreg.json"]["data"]["test_accuracy"]
                  for commit in shown for exp in (commit.get("experiments") or [])
                  if exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["models"]["logreg"]["epochs"] in (1, 2)
                  and exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["models"]["logreg"]["lr"] in (0.01, 0.02)]
    assert len(accuracies) == 4


def test_push_and_fresh_clone_pull_restore_everything(repo, tmp_path):
    reset(repo)
    project.dvc(repo, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    project.run(repo, "git", "commit", "-qam", "shared remote")
    project.dvc(repo, "push", "--run-cache")
    clone = tmp_path / "clone"
    project.run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "models" / "cnn.pt").exists()
    project.dvc(clone, "pull", "--run-cache")
    for path in ("data/raw/train-images-idx3-ubyte", "data/prepared/train.pt", "models/cnn.pt", "models/resnet18.pt",
                 "results/cnn/metrics.json", "results/resnet18/curves.csv"):
        assert (clone / path).is_file(), path
    assert "up to date" in project.dvc(clone, "status").stdout
    assert ran(project.dvc(clone, "repro").stdout) == set()


def test_fresh_clone_restores_a_teammates_run_from_the_remote_run_cache(repo, tmp_path):
    """What the pull-request workflow relies on: params someone ran and pushed are not trained again."""
    remote = str(tmp_path / "team-remote")
    reset(repo)
    project.dvc(repo, "remote", "add", "--local", "team", remote)
    project.dvc(repo, "exp", "run", "-S", "models.logreg.lr=0.02")
    project.dvc(repo, "push", "-r", "team", "--run-cache")
    reset(repo)
    project.dvc(repo, "push", "-r", "team")  # the committed outputs too, as CI on main would push them
    project.dvc(repo, "remote", "remove", "--local", "team")

    clone = tmp_path / "clone"
    project.run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    project.dvc(clone, "remote", "add", "--local", "-d", "team", remote)
    set_param(clone, "models.logreg.lr", 0.02)
    result = project.dvc(clone, "repro", "--pull")
    assert ran(result.stdout) == {"summarize"}
    assert "Stage 'train@logreg' is cached - skipping run, checking out outputs" in result.stdout
    assert "up to date" in project.dvc(clone, "status").stdout


def reset(repo):
    """Back to the committed state, workspace files and DVC-tracked outputs alike."""
    project.run(repo, "git", "reset", "-q", "--hard")
    project.dvc(repo, "checkout", "-q", "--force")
