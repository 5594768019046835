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

from tests import project
from tests.dvc_repo import MODELS, baseline, batch_size_branch, clean, every, ran, repo, reset, set_param  # noqa: F401 (fixtures)
from tests.test_repository import import_closure

pytestmark = pytest.mark.e2e  # real DVC commands: minutes, so outside `make test-fast`


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


def test_a_param_only_evaluation_reads_does_not_retrain(repo):
    result = project.dvc(repo, "exp", "run", "-S", "models.cnn.tta_views=2")
    assert ran(result.stdout) == {
        "configure@cnn",
        "evaluate@cnn",
        "export@cnn",
        "summarize",
    }  # views are inside the export


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
    assert ran(changed.stdout) == {
        "configure@mlp_small",
        "train@mlp_small",
        "evaluate@mlp_small",
        "export@mlp_small",
        "summarize",
    }

    back = project.dvc(repo, "exp", "run", "-S", "models.mlp_small.lr=0.001")  # the committed value
    assert ran(back.stdout) == {"summarize"}  # the rest came from the run-cache
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
    set_param(repo, "models.cnn.epochs", 20)  # time to interrupt after the first, short to finish
    process = project.start(
        repo, sys.executable, "-m", "dvc", "repro", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
    assert "train@cnn" in ran(project.dvc(repo, "repro").stdout)
    assert "up to date" in project.dvc(repo, "status").stdout
