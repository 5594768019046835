"""The code is formatted and linted as pyproject.toml's [tool.ruff] says (ruff is pinned in requirements.txt)."""

import subprocess
import sys

from tests.project import ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_code_is_formatted():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, f"run: ruff format .\n{result.stdout}{result.stderr}"


def test_the_code_passes_the_linter():
    result = ruff("check", ".")
    assert result.returncode == 0, f"run: ruff check --fix .\n{result.stdout}{result.stderr}"
