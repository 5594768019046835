"""The notebook runs top to bottom on the committed results.

Its code cells run as one script in a fresh process rather than through nbclient: that would add
nbclient and a Jupyter kernel to the dependencies for what `exec` of the cells already proves.
"""

import json
import subprocess
import sys

import pytest

from tests.project import ROOT, environment

pytestmark = pytest.mark.e2e  # imports DVC and reads git history: seconds


def test_the_notebooks_code_cells_run_in_order():
    notebook = json.loads((ROOT / "notebooks" / "explore.ipynb").read_text())
    code = "\n\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert all(not cell.get("outputs") for cell in notebook["cells"])  # committed without outputs
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**environment(), "MPLBACKEND": "Agg"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
