import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*paths):
    # Beside this interpreter when the virtual environment is not activated.
    binary = shutil.which("actionlint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert binary, "actionlint is missing: pip install -r requirements.txt"
    return subprocess.run([binary, "-no-color", *map(str, paths)], capture_output=True, text=True)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def run_commands(workflow: str) -> list[list[str]]:
    """Each shell command of the `run:` steps as a list of words; comments dropped by the shell lexer."""
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"]
    commands = []
    for script in (step.get("run", "") for job in jobs.values() for step in job["steps"]):
        for line in script.splitlines():
            words = list(shlex.shlex(line, posix=True, punctuation_chars=True))
            command = []
            for word in words + [";"]:  # ; && || | end a command
                if word not in (";", "&&", "||", "|"):
                    command.append(word)
                    continue
                if command:
                    commands.append(command)
                command = []
    return commands


def has_command(commands: list[list[str]], *words: str) -> bool:
    """True if some line runs `words` as a command: at its start or after if/elif/then/else/!."""
    for line in commands:
        while line and line[0] in ("if", "elif", "then", "else", "!"):
            line = line[1:]
        if line[: len(words)] == list(words):
            return True
    return False


def test_report_workflow_runs_the_make_target_and_updates_one_comment():
    commands = run_commands("pr-report.yml")
    assert any(line[:2] == ["make", "pr-report"] for line in commands)
    assert has_command(commands, "cml", "comment", "update")
    assert not has_command(commands, "dvc", "repro")  # the report retrains what the change reaches, no more


def test_a_comment_does_not_count_as_a_command():
    assert not has_command([["echo", "dvc", "repro", "--pull"]], "dvc", "repro", "--pull")
    assert run_commands("pr-report.yml")  # comments are stripped, commands remain
    assert not any(word.startswith("#") for line in run_commands("pr-report.yml") for word in line)


def step(workflow: str, name: str) -> str:
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"]
    return next(step["run"] for job in jobs.values() for step in job["steps"] if step.get("name") == name)


def test_the_gpu_workflow_takes_its_arguments_through_the_environment_only():
    text = (ROOT / ".github" / "workflows" / "gpu-experiment.yml").read_text()
    jobs = yaml.safe_load(text)["jobs"]
    scripts = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    assert not any("${{" in script for script in scripts)  # an input pasted into a script could run anything
    assert jobs["experiment"]["runs-on"] == ["self-hosted", "gpu"]
    assert has_command(run_commands("gpu-experiment.yml"), ".venv/bin/dvc", "exp", "push", "origin")


def test_a_dry_run_of_the_experiment_step_passes_each_argument_whole(tmp_path):
    """The step's own script, with a stand-in dvc that records its arguments."""
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    fake = tmp_path / ".venv" / "bin" / "dvc"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    fake.chmod(0o755)
    script = step("gpu-experiment.yml", "Run the experiment")
    env = {"PATH": os.environ["PATH"], "ARGS": "-S models.cnn.seed=1 -S 'batch_size=512'", "EXP_NAME": "seed-1"}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "[exp]",
        "[run]",
        "[--pull]",
        "[--allow-missing]",
        "[-S]",
        "[models.cnn.seed=1]",
        "[-S]",
        "['batch_size=512']",
        "[--name]",
        "[seed-1]",
    ]
    injected = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env, "ARGS": "$(touch pwned) ; touch pwned2", "EXP_NAME": ""},
    )
    assert injected.returncode == 0 and not list(tmp_path.glob("pwned*"))


def test_the_devcontainer_installs_the_data_and_the_pinned_packages():
    text = (ROOT / ".devcontainer" / "devcontainer.json").read_text()
    config = json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))
    assert "3.11" in config["image"]
    assert "dataset-fashion-mnist" in config["postCreateCommand"] and config["postCreateCommand"].endswith("make setup")
    assert "iterative.dvc" in config["customizations"]["vscode"]["extensions"]
