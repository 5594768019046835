"""A throwaway copy of this project in a temporary git + DVC repository, on synthetic data."""

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

from fmnist.core import paths
from tests.synthetic import write_raw
from tools.project import ROOT, copy_project, set_dotted

# What a test repository takes from this checkout: the pipeline, the code its stages run, the
# tools that drive it (the pull-request report), and what git and DVC must ignore. Not params.yaml, dvc.lock
# or the committed results: a test writes its own params and runs its own pipeline.
CODE = ("dvc.yaml", "stages", "fmnist", "tools", ".dvcignore", ".gitignore")

# Small enough for seconds per model on two CPU cores, large enough to learn something.
SMALL_PARAMS = {
    "epochs": 1,
    "val_size": 100,
    "batch_size": 64,
    "eval_batch_size": 256,
    "models.logreg.epochs": 2,
    "models.mlp_small.epochs": 2,
    "models.mlp.epochs": 2,
    "models.cnn.channels": [4, 8],
    "models.resnet18.epochs": 1,
    "models.resnet18.downsample": 4,
}


# The DVC end-to-end repository's models: two that set their own epochs and one (cnn) that uses the
# global, so a global change can be seen to retrain some models and not others. Fewer models keep
# the suite within minutes: each stage process pays about 3 s to import torch.
DVC_MODELS = ("logreg", "mlp_small", "cnn")


def small_params(models: tuple[str, ...] | None = None) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in SMALL_PARAMS.items():
        set_dotted(params, key, value)
    # The DVC tests need one model on the global batch size and epochs, as the cnn is without its own.
    params["models"]["cnn"].pop("batch_size", None)
    if models:
        params["models"] = {name: params["models"][name] for name in models}
    return params


def environment() -> dict:
    """The stages' `python` must be this interpreter; git needs an identity."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    env.pop("FASHION_MNIST_DIR", None)
    return env


# Well above the longest command here (the baseline's `dvc repro` of the whole small pipeline,
# a minute or two on two busy cores), so a hang fails its test instead of stalling the suite.
COMMAND_TIMEOUT = 300


def run(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def start(cwd: Path, *command: str, **popen) -> subprocess.Popen:
    """Start a command in the background, with SIGINT as a terminal's foreground job has it.

    A shell that started this suite in the background may have left SIGINT ignored, and an
    ignored SIGINT is inherited down to the stages, which would then never see Ctrl-C.
    """
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )


def wait_for_resume_point(repo: Path, name: str, process: subprocess.Popen, seconds: float = 120) -> None:
    """Return once training `name` has saved its first resume point, or `process` ended, or time ran out."""
    resume = repo / paths.resume(name)
    deadline = time.time() + seconds
    while not resume.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def stage(cwd: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", f"stages.{name}", *args, check=check)


def stage_in_process(repo: Path, monkeypatch, capsys, name: str, *args: str) -> SimpleNamespace:
    """`python -m stages.<name> args` in this process, without the 2-3 s a new one takes to import torch.

    Returns what `stage(..., check=False)` does: returncode, stdout, stderr.
    """
    from fmnist.core import cli

    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "argv", [f"stages/{name}.py", *args])
    monkeypatch.delenv("DVC_STAGE", raising=False)
    sigterm = signal.getsignal(signal.SIGTERM)  # cli.run installs its own
    capsys.readouterr()
    try:
        cli.run(importlib.import_module(f"stages.{name}").main)
        code = 0
    except SystemExit as exit:
        code = exit.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_code(repo: Path) -> None:
    """CODE as git sees it in this checkout (tracked and new files; no caches, nothing ignored)."""
    copy_project(repo)
    for entry in repo.iterdir():
        if entry.name not in CODE:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def plain_project(repo: Path, params: dict | None = None) -> Path:
    """Code, small params and synthetic raw data: enough to run the stages without DVC."""
    copy_code(repo)
    write_params(repo, params or small_params())
    write_raw(repo / "data" / "raw")
    return repo


def dvc_project(repo: Path, params: dict | None = None) -> Path:
    """A git + DVC repository whose download stage is already recorded, on synthetic data."""
    plain_project(repo, params or small_params(DVC_MODELS))
    run(repo, "git", "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # dvc.yaml's plot template
    # The synthetic files cannot pass the real checksums, so record them as the download's output.
    dvc(repo, "commit", "-f", "download")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "project")
    return repo
