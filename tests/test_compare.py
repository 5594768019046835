"""The pull-request report (tools.compare): what it retrains, like for like, against seed noise;
and DVC's plots drawn offline. End to end in the DVC test repository (tests/dvc_repo.py)."""

import json
import re
import sys

import pytest
import yaml

from fmnist.core import paths, settings
from fmnist.params import parse
from tests import project
from tests.dvc_repo import baseline, clean, experiments, ran, repo, reset, set_param  # noqa: F401 (fixtures)
from tools.compare import noise, report, vega
from tools.project import ROOT


def recipe(**changes) -> settings.Recipe:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["models"]["logreg"].update(changes)
    return parse.parse(raw).models["logreg"].recipe


def log_runs(path, runs: list[tuple[dict, str, float]]) -> None:
    """(recipe changes, dtype, test accuracy) as bench.trials logs them."""
    with path.open("w") as log:
        for changes, dtype, test in runs:
            log.write(json.dumps({"model": "logreg", "changes": changes, "dtype": dtype, "test": test}) + "\n")


def test_spread_is_over_the_seeds_of_the_same_recipe_and_dtype(tmp_path):
    base = recipe().changes()
    log_runs(
        tmp_path / "trials.jsonl",
        [
            (base, "torch.bfloat16", 0.84),
            (base | {"seed": 1}, "torch.bfloat16", 0.85),
            (base | {"seed": 2}, "torch.bfloat16", 0.86),
            (base | {"seed": 1}, "torch.float32", 0.50),  # another dtype
            (recipe(lr=0.01).changes() | {"seed": 3}, "torch.bfloat16", 0.10),  # another recipe
        ],
    )
    spread = noise.spread(recipe(), "torch.bfloat16", tmp_path / "trials.jsonl")
    assert spread.seeds == 3 and spread.sd == pytest.approx(0.01)
    assert not spread.beyond(0.02) and spread.beyond(0.03)  # 2 x sqrt(2) x 0.01 = 0.028
    assert noise.spread(recipe(lr=0.02), "torch.bfloat16", tmp_path / "trials.jsonl") is None


def model_row(base: float | None, new: float, spread: dict | None) -> dict:
    metrics = {key: 0.5 for key in report.HEADLINE}
    return {
        "model": "logreg",
        "base": None if base is None else metrics | {"test_accuracy": base},
        "new": metrics | {"test_accuracy": new},
        "base_machine": "CPU A, bfloat16",
        "new_machine": "CPU A, bfloat16",
        "spread": spread,
    }


def result(changed: list[dict]) -> dict:
    return {"base": "main", "changed": changed, "unchanged": [], "params": [], "retrained": [], "retrained_base": []}


def test_the_first_line_says_what_changed_and_against_what_noise():
    assert report.first_line(result([])) == "## Fashion-MNIST against `main`: no model changed"
    within = report.first_line(result([model_row(0.80, 0.81, {"sd": 0.01, "seeds": 3})]))
    assert within.endswith("1 model changed (logreg +1.00 points, within noise)")
    beyond = report.first_line(result([model_row(0.80, 0.84, {"sd": 0.01, "seeds": 3})]))
    assert beyond.endswith("(logreg +4.00 points, beyond noise)")
    assert "noise unknown" in report.first_line(result([model_row(0.80, 0.84, None)]))
    assert "new model" in report.first_line(result([model_row(None, 0.84, None)]))


def test_configure_names_the_models_each_global_set_away_from_its_default_reaches():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["batch_size"] = 4096
    raw["models"]["mlp"]["batch_size"] = 1024
    raw["models"]["cnn"]["batch_size"] = 512
    lines = parse.parse(raw).reach_lines()
    assert "batch_size = 4096 reaches logreg, mlp_small, resnet18; mlp (1024) and cnn (512) set their own" in lines
    assert not any(line.startswith("eval_batch_size") for line in lines)  # at its default
    raw["seed"] = 1
    raw["models"]["cnn"]["seed"] = 0
    assert "seed = 1 reaches logreg, mlp_small, mlp, resnet18; cnn (0) sets its own" in parse.parse(raw).reach_lines()


def compare(repo, *env: str) -> dict:
    command = ["env", *env, sys.executable, "-m", "tools.compare", "--base", "main", "--out", "report"]
    project.run(repo, *command)
    return json.loads((repo / "report" / "report.json").read_text()) | {
        "markdown": (repo / "report" / "report.md").read_text()
    }


def commit(repo, branch: str, message: str) -> None:
    project.run(repo, "git", "checkout", "-qb", branch)
    project.run(repo, "git", "add", "-A")
    project.run(repo, "git", "commit", "-qm", message)


@pytest.mark.e2e
def test_a_change_no_stage_runs_retrains_nothing(repo):
    (repo / "NOTES.md").write_text("A typo, fixed.\n")
    commit(repo, "docs", "docs only")
    shown = compare(repo)
    assert shown["markdown"].splitlines()[0] == "## Fashion-MNIST against `main`: no model changed"
    assert shown["stages"] == [] and shown["retrained"] == []
    assert {model["model"] for model in shown["unchanged"]} == {"logreg", "mlp_small", "cnn"}
    assert "bfloat16" in shown["markdown"] or "float32" in shown["markdown"]  # each figure names what made it


@pytest.mark.e2e
def test_a_change_to_one_model_retrains_and_reports_that_model_alone(repo):
    set_param(repo, "models.logreg.lr", 0.02)
    commit(repo, "lr", "logreg's lr")
    shown = compare(repo)
    assert shown["stages"] == ["evaluate@logreg", "summarize", "train@logreg"]
    assert shown["retrained"] == ["evaluate@logreg", "train@logreg"]
    assert [model["model"] for model in shown["changed"]] == ["logreg"]
    assert shown["changed"][0]["base_machine"] == shown["changed"][0]["new_machine"]
    main = json.loads((repo / paths.test_metrics("logreg")).read_text())
    assert shown["changed"][0]["base"] == main  # made here, as main's was: no base rerun
    assert shown["markdown"].splitlines()[0].startswith("## Fashion-MNIST against `main`: 1 model changed (logreg ")
    assert (repo / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
def test_a_base_made_on_another_kind_of_machine_is_remade_here(repo):
    provenance = repo / paths.REPORTS / "provenance" / "logreg.json"
    made = json.loads(provenance.read_text())
    provenance.write_text(json.dumps(made | {"machine": "CPU elsewhere, float32"}))
    commit(repo, "elsewhere", "base figures from another CPU kind")
    set_param(repo, "models.logreg.lr", 0.02)
    project.run(repo, "git", "commit", "-qam", "logreg's lr")
    project.run(repo, sys.executable, "-m", "tools.compare", "--base", "elsewhere", "--out", "report")
    shown = json.loads((repo / "report" / "report.json").read_text())
    (changed,) = shown["changed"]
    assert changed["base_machine"] == changed["new_machine"] == made["machine"]


@pytest.mark.e2e
def test_an_experiment_stopped_at_one_evaluation_shows_that_runs_metrics(repo):
    before = json.loads((repo / paths.test_metrics("logreg")).read_text())
    result = project.dvc(repo, "exp", "run", "-n", "lr-only", "-S", "models.logreg.lr=0.05", "evaluate@logreg")
    assert ran(result.stdout) == {"configure", "train@logreg", "evaluate@logreg"}
    written = json.loads((repo / paths.test_metrics("logreg")).read_text())
    assert written != before
    shown = experiments(repo)["lr-only"]["metrics"]["metrics/logreg.json"]["data"]
    assert shown == written


def marks(svg: str) -> int:
    return len(re.findall(r"<(path|rect|line|circle)\b", svg))


@pytest.mark.e2e
def test_dvc_plots_draw_offline(repo):
    project.run(repo, sys.executable, "-m", "tools.compare.vega")
    project.dvc(repo, "plots", "show", "-o", "shown")
    page = (repo / "shown" / "index.html").read_text()
    assert not re.search(r"<script[^>]*src=", page)  # nothing fetched: Vega is inlined
    assert "window.vegaEmbed" in page
    shown = json.loads(project.dvc(repo, "plots", "show", "--json").stdout)["data"]
    drawn = 0
    for plots in shown.values():
        for plot in (plot for plot in plots if plot["type"] == "vega"):
            empty = plot["content"] | {"data": {"values": []}}
            assert marks(vega.svg(plot["content"])) > marks(vega.svg(empty)), plot["content"]["title"]
            drawn += 1
    assert drawn >= 3  # validation accuracy, losses, a confusion matrix per model


@pytest.mark.e2e
def test_models_the_base_lacks_are_reported_new(repo):
    """The first commit recorded only the download: every model is new there."""
    first = project.run(repo, "git", "rev-list", "--max-parents=0", "HEAD").stdout.strip()
    project.run(repo, sys.executable, "-m", "tools.compare", "--base", first, "--out", "report")
    shown = json.loads((repo / "report" / "report.json").read_text())
    assert {model["model"] for model in shown["changed"]} == {"logreg", "mlp_small", "cnn"}
    assert all(model["base"] is None for model in shown["changed"])
    assert (
        "3 models changed (cnn new model; logreg new model; mlp_small new model)"
        in (repo / "report" / "report.md").read_text()
    )


@pytest.mark.e2e
def test_an_unknown_base_is_one_line(repo):
    result = project.run(repo, sys.executable, "-m", "tools.compare", "--base", "nosuch", check=False)
    assert result.returncode != 0
    assert result.stderr == "error: nosuch: no such commit here (git fetch it first?)\n"
