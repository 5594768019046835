"""The DVC end-to-end tests' repository: its whole pipeline run and committed once on `main`, then
copied for each test module. Every test starts from that commit (the autouse `clean` fixture), so
each one passes alone with `-k`; a test that needs a second revision builds it through a fixture,
and one that commits does so on its own branch. Two modules share the work, so pytest-xdist runs
them at once.
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tests import project
from tools.project import set_dotted

MODELS = project.DVC_MODELS


@pytest.fixture(scope="session")
def baseline(tmp_path_factory, worker_id) -> Path:
    """The project with its whole pipeline run and committed on main, built once per test session:
    the first pytest-xdist worker to ask builds it, the others wait for it."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # every worker's temporary directories sit beside each other here
    built = shared / "dvc-baseline"
    with FileLock(shared / "dvc-baseline.lock"):
        if not (shared / "dvc-baseline.done").exists():
            shutil.rmtree(built, ignore_errors=True)
            project.dvc_project(built)
            project.dvc(built, "repro")
            project.run(built, "git", "add", "-A")
            project.run(built, "git", "commit", "-qm", "baseline run")
            (shared / "dvc-baseline.done").touch()
    return built


@pytest.fixture(scope="module")
def repo(baseline, tmp_path_factory):
    """A copy of the baseline for one module: its tests may commit, queue and push without the other's."""
    repo = tmp_path_factory.mktemp("dvc") / "repo"
    # Not .dvc/tmp: locks and experiment state belong to the running repository.
    shutil.copytree(
        baseline, repo, symlinks=True, ignore=lambda folder, names: ["tmp"] if folder.endswith(".dvc") else []
    )
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


def experiments(repo) -> dict[str, dict]:
    """`dvc exp show`'s experiments: name -> data (params, metrics)."""
    shown = json.loads(project.dvc(repo, "exp", "show", "--json").stdout)
    return {exp["name"]: exp["revs"][0]["data"] for commit in shown for exp in (commit.get("experiments") or [])}


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def every(*stages: str) -> set[str]:
    return {f"{stage}@{name}" for stage in stages for name in MODELS}


def set_param(repo, dotted_key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    project.write_params(repo, set_dotted(params, dotted_key, value))
