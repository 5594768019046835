import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*paths):
    # Beside this interpreter when the virtual environment is not activated.
    binary = shutil.which("actionlint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert binary, "actionlint is missing: pip install -r requirements.txt"
    return subprocess.run([binary, "-no-color", *map(str, paths)], capture_output=True, text=True)


def test_both_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"tests.yml", "pr-report.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    assert actionlint(broken).returncode != 0


def test_report_workflow_updates_one_comment_from_the_project_command():
    text = (ROOT / ".github" / "workflows" / "pr-report.yml").read_text()
    assert "python -m stages.report" in text and "cml comment update" in text
    assert "dvc repro --pull" in text and "dvc push --run-cache" in text
