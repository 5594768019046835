"""End to end with the real DVC commands: what a change reruns, in a temporary git repository on synthetic data.

The repository and its fixtures are tests/dvc_repo.py's; tests/test_dvc_sharing.py has the rest.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fmnist.core import paths
from tests import project
from tests.dvc_repo import MODELS, baseline, batch_size_branch, clean, every, ran, repo, reset, set_param  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e  # real DVC commands: minutes, so outside `make test-fast`


def test_a_global_that_some_models_override_does_not_retrain_them(repo):
    """logreg and mlp_small set their own epochs: only cnn, which uses the global, retrains."""
    result = project.dvc(repo, "exp", "run", "-S", "epochs=2")
    assert ran(result.stdout) == {"configure", "train@cnn", "evaluate@cnn", "summarize"}


def test_a_param_only_evaluation_reads_does_not_retrain(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.tta_views=6")
    assert ran(result.stdout) == {"configure", "evaluate@cnn", "summarize"}


def stale(repo) -> set[str]:
    """The stages `dvc status` names: those whose own deps changed (what follows them, once they rerun)."""
    return set(json.loads(project.dvc(repo, "status", "--json").stdout))


def edit(repo, source: str) -> None:
    """A change to `source` that changes no result: a comment at its end."""
    with open(repo / source, "a") as file:
        file.write("\n# an edit that changes no result\n")


# What an edit to each package of fmnist/ makes stale: a message or a check of params.yaml
# reruns configure alone, a plot's style evaluate and summarize, the training loop every train.
STALE_AFTER_AN_EDIT_TO = {
    "fmnist/params/parse.py": {"configure"},
    "fmnist/report/plots.py": every("evaluate") | {"summarize"},
    "fmnist/train/training.py": every("train"),
    "fmnist/model/models.py": every("train", "evaluate"),
    "fmnist/data/splits.py": {"download", "prepare"} | every("train", "evaluate"),
    "tools/compare/runs.py": set(),  # the pull-request report: no stage runs it
}


@pytest.mark.parametrize("source", STALE_AFTER_AN_EDIT_TO)
def test_an_edit_to_a_package_makes_stale_only_the_stages_it_can_change(repo, source):
    edit(repo, source)
    assert stale(repo) == STALE_AFTER_AN_EDIT_TO[source]


def test_an_edit_to_the_params_checks_reruns_configure_alone_which_changes_nothing(repo):
    """configure reruns; its files come out identical, so DVC skips every stage after it."""
    configs = {path: path.read_bytes() for path in sorted((repo / paths.CONFIGS).rglob("*")) if path.is_file()}
    edit(repo, "fmnist/params/parse.py")
    assert ran(project.dvc(repo, "repro").stdout) == {"configure"}
    assert {path: path.read_bytes() for path in sorted((repo / paths.CONFIGS).rglob("*")) if path.is_file()} == configs
    assert stale(repo) == set()


def test_removing_a_model_drops_it_from_the_leaderboard_metrics_and_cards(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["models"]["logreg"]
    project.write_params(repo, params)
    project.dvc(repo, "repro")
    board = json.loads((repo / "reports" / "leaderboard.json").read_text())
    assert {row["model"] for row in board} == set(MODELS) - {"logreg"}
    for gone in (
        "metrics/logreg.json",
        "plots/curves/logreg.csv",
        "reports/timing/logreg.json",
        "reports/model_cards/logreg.md",
    ):
        assert not (repo / gone).exists(), gone


def test_rerunning_earlier_params_restores_from_run_cache(repo):
    """Params that ran before train nothing: DVC's run-cache restores the model, and evaluate scores
    it again (a stage with a git-tracked output, metrics/<model>.json, has no run-cache entry)."""
    changed = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.005")
    assert ran(changed.stdout) == {
        "configure",
        "train@mlp_small",
        "evaluate@mlp_small",
        "summarize",
    }

    back = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.001")  # the committed value
    assert ran(back.stdout) == {"evaluate@mlp_small", "summarize"}  # configure and train from the run-cache
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


# `dvc exp run`, which also moves git's refs and index, covers `dvc repro`'s case too: the stage's
# outputs are the same, and so is how DVC passes Ctrl-C on. An lr no other test runs, so the
# run-cache holds no completed run of it to restore untrained.
def test_interrupted_run_shows_changed_then_completes(repo):
    command = ("exp", "run")
    set_param(repo, "models.cnn.lr", 0.03)
    set_param(repo, "models.cnn.epochs", 20)  # time to interrupt after the first, short to finish
    process = project.start(
        repo, sys.executable, "-m", "dvc", *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    project.wait_for_resume_point(repo, "cnn", process, seconds=300)  # after epoch 1 of 20
    # Ctrl-C as it reaches the stage: DVC runs the command apart and ignores SIGINT itself meanwhile.
    pid = training_process(process.pid)
    assert pid, "train@cnn was not running mid-training"
    os.kill(pid, signal.SIGINT)
    process.wait(timeout=120)
    assert process.returncode != 0
    assert "train@cnn" in project.dvc(repo, "status").stdout
    assert not [p for folder in ("models", "results", "metrics", "plots") for p in (repo / folder).rglob("*.tmp")]
    assert "train@cnn" in ran(project.dvc(repo, *command).stdout)
    assert "up to date" in project.dvc(repo, "status").stdout
    project.run(repo, "git", "status")  # git's index survived (docs/experiments.md says how to mend it if not)
