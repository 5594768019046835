"""dvc.yaml's overlaid curves colour each model (the long CSV's `model` column), and dash each revision."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.project import ROOT

pytestmark = pytest.mark.e2e  # runs DVC


def dvc(repo, *args):
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=True)


def test_plots_diff_colours_by_model_and_dashes_by_revision(tmp_path):
    repo = tmp_path / "repo"
    (repo / "plots").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": pipeline["plots"][:2]}))
    curves = repo / "plots" / "curves.csv"
    curves.write_text("model,epoch,val_accuracy,train_loss,val_loss\na,1,0.5,1,1.1\nb,1,0.4,1.2,1.3\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    curves.write_text(curves.read_text().replace("0.5", "0.6"))

    shown = json.loads(dvc(repo, "plots", "diff", "HEAD", "--json").stdout)["data"]
    assert len(shown) == 2
    for plots in shown.values():
        spec = plots[0]["content"]
        assert spec["encoding"]["color"]["field"] == "model"
        assert spec["encoding"]["strokeDash"]["field"] == "line"  # revision, and train or validation curve
        rows = spec["data"]["values"]
        assert {row["model"] for row in rows} == {"a", "b"} and {row["rev"] for row in rows} == {"workspace", "HEAD"}
