"""The DVC end-to-end tests' repository: one per test module, its whole pipeline run and committed
once on `main`. Every test starts from that commit (the autouse `clean` fixture), so each one passes
alone with `-k`; a test that needs a second revision builds it through a fixture, and one that
commits does so on its own branch. Two modules share the work, so pytest-xdist runs them at once.
"""

import pytest
import yaml

from tests import project

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
