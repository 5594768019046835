"""End to end with the real DVC commands, in a temporary git repository on synthetic data.

One repository per module, its whole pipeline run and committed once on `main`. Every test starts
from that commit (the autouse `clean` fixture), so each one passes alone with `-k`; a test that needs
a second revision builds it through a fixture, and one that commits does so on its own branch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests import project
from tests.test_repository import import_closure

pytestmark = pytest.mark.e2e  # real DVC commands or torchrun: minutes, so outside `make test-fast`

MODELS = project.DVC_MODELS


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A project whose whole pipeline has run once and been committed on main."""
    repo = project.dvc_project(tmp_path_factory.mktemp("dvc") / "repo")
    result = project.dvc(repo, "repro")
    assert "Running stage 'summarize'" in result.stdout
    project.run(repo, "git", "add", "-A")
    project.run(repo, "git", "commit", "-qm", "baseline run")
    return repo


@pytest.fixture(autouse=True)
def clean(repo):
    reset(repo)


def reset(repo):
    """Back to main's last commit: workspace, DVC-tracked outputs, no local remotes."""
    project.run(repo, "git", "checkout", "-qf", "main")
    project.run(repo, "git", "reset", "-q", "--hard")
    project.run(repo, "git", "clean", "-qfd")
    for remote in project.run(repo, "git", "remote").stdout.split():
        project.run(repo, "git", "remote", "remove", remote)
    (repo / ".dvc" / "config.local").unlink(missing_ok=True)
    project.dvc(repo, "checkout", "-q", "--force")


@pytest.fixture(scope="module")
def batch_size_branch(repo):
    """Branch bs128: main with batch_size 128, as `dvc exp run` left it; returns that run's output."""
    reset(repo)
    result = project.dvc(repo, "exp", "run", "-n", "bs128", "-S", "batch_size=128")
    project.run(repo, "git", "checkout", "-qb", "bs128")
    project.run(repo, "git", "add", "-A")
    project.run(repo, "git", "commit", "-qm", "batch size 128")
    reset(repo)
    return result.stdout


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def every(*stages: str) -> set[str]:
    return {f"{stage}@{name}" for stage in stages for name in MODELS}


def set_param(repo, dotted_key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, key = dotted_key.split(".")
    section = params
    for parent in parents:
        section = section[parent]
    section[key] = value
    project.write_params(repo, params)


def test_second_repro_runs_nothing(repo):
    result = project.dvc(repo, "repro")
    assert ran(result.stdout) == set()
    assert "Data and pipelines are up to date" in result.stdout


def test_status_is_clean_and_lock_lists_every_model(repo):
    assert "up to date" in project.dvc(repo, "status").stdout
    lock = (repo / "dvc.lock").read_text()
    for stage in every("configure", "train", "evaluate"):
        assert f"{stage}:" in lock


def test_a_global_that_some_models_override_does_not_retrain_them(repo):
    """logreg and mlp_small set their own epochs: only cnn, which uses the global, retrains."""
    result = project.dvc(repo, "exp", "run", "-S", "epochs=2")
    assert ran(result.stdout) == every("configure") | {"train@cnn", "evaluate@cnn", "export@cnn", "summarize"}
    for name in ("logreg", "mlp_small"):
        assert f"Stage 'train@{name}' didn't change, skipping" in result.stdout


def test_a_param_only_evaluation_reads_does_not_retrain(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.tta_views=2")
    assert ran(result.stdout) == {"configure@cnn", "evaluate@cnn", "export@cnn", "summarize"}  # views are inside the export
    assert "Stage 'train@cnn' didn't change, skipping" in result.stdout


def stage_instances(repo) -> dict[str, str]:
    """Every stage's name in DVC's output (train@cnn) and the module its command runs."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    instances = {}
    for stage, declared in pipeline["stages"].items():
        module = (declared.get("do") or declared)["cmd"].split()[2]
        names = [f"{stage}@{name}" for name in MODELS] if "foreach" in declared else [stage]
        instances.update(dict.fromkeys(names, module))
    return instances


# What an edit to each module may change: the modules follow stage lines, so that a message or a
# check reruns configure alone, a progress bar or launcher edit train alone, a picture's style only
# evaluate and summarize.
STAGES_AN_EDIT_CHANGES = {
    "fmnist/config.py": {"prepare", "configure", "summarize"},
    "fmnist/progress.py": {"train"},
    "fmnist/distributed.py": {"train"},
    "fmnist/training.py": {"train"},
    "fmnist/augment.py": {"train"},
    "fmnist/inference.py": {"train", "evaluate", "export"},
    "fmnist/export.py": {"export"},
    "fmnist/plots.py": {"evaluate", "summarize"},
    "fmnist/leaderboard.py": {"summarize"},
    "fmnist/live.py": {"train"},
    "fmnist/cards.py": {"summarize"},
}


def test_an_edit_to_a_module_changes_only_the_stages_it_can_change(repo):
    for module, expected in STAGES_AN_EDIT_CHANGES.items():
        source = repo / module
        original = source.read_text()
        source.write_text(original + "\n# an edit\n")
        status = json.loads(project.dvc(repo, "status", "--json").stdout)
        source.write_text(original)
        assert {name.split("@")[0] for name in status} == expected, module


@pytest.mark.parametrize("module", ["fmnist/config.py", "fmnist/metrics.py", "fmnist/leaderboard.py"])
def test_editing_a_library_module_reruns_exactly_the_stages_that_import_it(repo, module):
    """config.py: configure reruns, its files come out identical, so no model retrains or re-evaluates."""
    with open(repo / module, "a") as source:
        source.write("\n# an edit that changes no result\n")
    expected = {name for name, entry in stage_instances(repo).items() if module in import_closure(entry)}
    assert expected  # each module here is imported by some stage
    assert ran(project.dvc(repo, "repro").stdout) == expected


def test_removing_a_model_drops_it_from_the_leaderboard_metrics_and_cards(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["models"]["logreg"]
    project.write_params(repo, params)
    project.dvc(repo, "repro")
    board = json.loads((repo / "reports" / "leaderboard.json").read_text())
    assert {row["model"] for row in board} == set(MODELS) - {"logreg"}
    for gone in ("metrics/logreg.json", "plots/curves/logreg.csv", "reports/model_cards/logreg.md"):
        assert not (repo / gone).exists(), gone


def test_rerunning_earlier_params_restores_from_run_cache(repo):
    """Params that ran before train nothing: DVC's run-cache restores the model and its results."""
    changed = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.005")
    assert ran(changed.stdout) == {"configure@mlp_small", "train@mlp_small", "evaluate@mlp_small", "export@mlp_small",
                                   "summarize"}

    back = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.001")  # the committed value
    assert ran(back.stdout) == {"summarize"}
    for stage in ("configure@mlp_small", "train@mlp_small", "evaluate@mlp_small", "export@mlp_small"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back.stdout
    # The restored results are the committed ones, byte for byte.
    assert project.run(repo, "git", "status", "--porcelain", "metrics", "plots", "reports").stdout == ""


def training_process(parent: int) -> int | None:
    """The pid of the `stages.train` process DVC started under `parent`, if it runs yet."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if b"stages.train" in command and descends_from(ppid, parent):
            return int(stat.parent.name)
    return None


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


def test_interrupted_repro_shows_changed_then_completes(repo):
    set_param(repo, "models.cnn.lr", 0.02)
    set_param(repo, "models.cnn.epochs", 60)  # ample time to interrupt after the first
    process = project.start(repo, sys.executable, "-m", "dvc", "repro",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    project.wait_for_resume_point(repo, "cnn", process, seconds=300)  # after epoch 1 of 60
    # Ctrl-C as it reaches the stage: DVC runs the command apart and ignores SIGINT itself meanwhile.
    pid = training_process(process.pid)
    assert pid, "train@cnn was not running mid-training"
    os.kill(pid, signal.SIGINT)
    process.wait(timeout=120)
    assert process.returncode != 0
    assert "train@cnn" in project.dvc(repo, "status").stdout
    assert not [p for folder in ("models", "results", "metrics", "plots") for p in (repo / folder).rglob("*.tmp")]
    assert "train@cnn" in ran(project.dvc(repo, "repro").stdout)
    assert "up to date" in project.dvc(repo, "status").stdout


def test_experiment_with_new_batch_size_retrains_every_model_but_keeps_data(repo, batch_size_branch):
    stages = ran(batch_size_branch)
    assert every("train", "evaluate") | {"summarize"} <= stages
    assert not stages & {"download", "prepare"}
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    names = [exp.get("name") for commit in shown for exp in (commit.get("experiments") or [])]
    assert "bs128" in names


def test_experiment_with_a_bad_value_fails_with_the_one_line_error(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.lr=-1", check=False)
    assert result.returncode != 0
    assert "error: params.yaml: models.cnn.lr = -1: must be a number in (0, 10]" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_metrics_hold_numbers_only_and_exp_show_has_no_string_columns(repo):
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    metrics = shown[0]["data"]["metrics"]
    assert set(metrics) == {f"metrics/{name}.json" for name in MODELS} | {f"metrics/timing/{name}.json" for name in MODELS}
    for values in metrics.values():
        assert all(isinstance(value, (int, float)) for value in values["data"].values()), values
    assert json.loads((repo / "reports" / "provenance" / "cnn.json").read_text())["params_hash"]


def test_metrics_and_plots_diff_between_revisions(repo, batch_size_branch):
    diff = json.loads(project.dvc(repo, "metrics", "diff", "main", "bs128", "--json").stdout)
    assert "metrics/cnn.json" in diff
    assert set(diff["metrics/cnn.json"]["test_loss"]) == {"old", "new", "diff"}

    plots = json.loads(project.dvc(repo, "plots", "diff", "main", "bs128", "--json").stdout)
    accuracy = plots["data"]["Validation accuracy per epoch"][0]
    assert set(accuracy["revisions"]) == {"main", "bs128"}
    assert "plots/confusion/cnn.csv" in plots["data"]


def test_report_numbers_match_dvc_metrics_diff(repo, batch_size_branch):
    project.run(repo, "git", "checkout", "-q", "bs128")
    project.dvc(repo, "checkout", "-q", "--force")
    project.run(repo, sys.executable, "-m", "stages.report", "--base", "main", "--out", "report")
    report = json.loads((repo / "report" / "report.json").read_text())
    diff = json.loads(project.dvc(repo, "metrics", "diff", "main", "--all", "--json").stdout)
    assert report["params"] == [{"param": "batch_size", "base": 64, "new": 128}]
    assert len(report["metrics"]) == len(MODELS) * 5  # 4 quality metrics and the training time, per model
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
    project.dvc(repo, "exp", "run", "--queue", "-S", "models.logreg.lr=0.01,0.02", "-S", "models.logreg.epochs=1,3")
    # Not captured: DVC's worker launcher keeps the caller's stdout open until the workers exit, so a
    # captured `queue start` would wait for every experiment, and forever if a worker never stopped.
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=repo, env=project.environment(),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            status = project.dvc(repo, "queue", "status").stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(3)
    finally:
        project.dvc(repo, "queue", "stop", check=False)
    assert status.count("Success") == 4, status
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    accuracies = [exp["revs"][0]["data"]["metrics"]["metrics/logreg.json"]["data"]["test_accuracy"]
                  for commit in shown for exp in (commit.get("experiments") or [])
                  if exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["models"]["logreg"]["epochs"] in (1, 3)
                  and exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["models"]["logreg"]["lr"] in (0.01, 0.02)]
    assert len(accuracies) == 4


def commit_shared_remote(repo, remote, branch: str) -> None:
    """A default DVC remote in the committed config, on a branch of its own (main stays as it was)."""
    project.run(repo, "git", "checkout", "-qb", branch)
    project.dvc(repo, "remote", "add", "-d", "shared", str(remote))
    project.run(repo, "git", "commit", "-qam", "shared remote")


def test_push_and_fresh_clone_pull_restore_everything(repo, tmp_path):
    commit_shared_remote(repo, tmp_path / "remote", "pull-test")
    project.dvc(repo, "push", "--run-cache")
    clone = tmp_path / "clone"
    project.run(tmp_path, "git", "clone", "-q", "-b", "pull-test", str(repo), str(clone))
    assert not (clone / "models" / "cnn.pt").exists()
    project.dvc(clone, "pull", "--run-cache")
    for path in ("data/raw/train-images-idx3-ubyte", "data/prepared/train.pt", "configs/cnn/train.json",
                 "models/cnn.pt", "models/logreg.pt", "results/cnn/metrics.json", "results/logreg/curves.csv"):
        assert (clone / path).is_file(), path
    assert "up to date" in project.dvc(clone, "status").stdout
    assert ran(project.dvc(clone, "repro").stdout) == set()


def test_registered_model_is_fetched_with_dvc_artifacts_get(repo, tmp_path):
    commit_shared_remote(repo, tmp_path / "remote", "artifacts-test")
    project.dvc(repo, "push")
    # A version in the model registry is a git tag in GTO's format (what Studio writes on "Register").
    project.run(repo, "git", "tag", "-a", "mlp-small@v1.0.0", "-m", "Registering artifact mlp-small version v1.0.0")
    fetched = tmp_path / "fetched.pt"
    project.dvc(tmp_path, "artifacts", "get", str(repo), "mlp-small", "--rev", "v1.0.0", "-o", str(fetched))
    assert fetched.read_bytes() == (repo / "models" / "mlp_small.pt").read_bytes()
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
    expected = (repo / "results" / "logreg" / "metrics.json").read_text()
    project.dvc(repo, "exp", "push", "origin", "shared-lr")  # git refs to origin, outputs to the DVC remote

    project.run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    project.dvc(clone, "remote", "add", "--local", "-d", "storage", str(storage))
    project.dvc(clone, "exp", "pull", "origin", "shared-lr")
    assert "shared-lr" in project.dvc(clone, "exp", "list", "--name-only").stdout
    project.dvc(clone, "exp", "apply", "shared-lr")
    assert (clone / "results" / "logreg" / "metrics.json").read_text() == expected
    assert yaml.safe_load((clone / "params.yaml").read_text())["models"]["logreg"]["lr"] == 0.02
    assert (clone / "models" / "logreg.pt").read_bytes() == (repo / "models" / "logreg.pt").read_bytes()
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
    assert ran(result.stdout) == {"summarize"}
    assert "Stage 'train@logreg' is cached - skipping run, checking out outputs" in result.stdout
    assert "up to date" in project.dvc(clone, "status").stdout
