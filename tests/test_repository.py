"""dvc.yaml, params.yaml and the code agree with one another."""

from pathlib import Path

import yaml

from fmnist import config, paths

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
MODELS = list(config.load(ROOT / "params.yaml").models)


def test_overlay_plots_list_every_model():
    overlays = [definition for plot in PIPELINE["plots"] if isinstance(plot, dict)
                for definition in plot.values() if "y" in definition and isinstance(definition["y"], dict)]
    assert len(overlays) == 2
    for definition in overlays:
        assert {Path(path).stem for path in definition["y"]} == set(MODELS)


def outputs(stage: str) -> set[str]:
    declared = PIPELINE["stages"][stage]["do"]
    return {next(iter(out)) if isinstance(out, dict) else out
            for kind in ("outs", "plots") for out in declared.get(kind, [])}


def test_stage_outputs_are_where_the_code_writes():
    key = "${key}"
    assert outputs("train") == {str(paths.model(key)), str(paths.curves(key)), str(paths.timing(key))}
    assert outputs("evaluate") == {str(paths.test_metrics(key)), str(paths.confusion(key)),
                                   str(paths.confusion_png(key)), str(paths.predictions_png(key))}
    published = paths.published(key)
    assert {str(result) for result in published} == (outputs("train") - {str(paths.model(key))}) | outputs("evaluate")
    assert {next(iter(out)) for out in PIPELINE["stages"]["summarize"]["outs"]} == {
        str(paths.METRICS), str(paths.PLOTS), str(paths.REPORTS)}
    assert all(copy.parts[0] in ("metrics", "plots") for copy in published.values())
    assert PIPELINE["stages"]["prepare"]["outs"] == [str(paths.PREPARED)]
    assert PIPELINE["stages"]["download"]["outs"] == [str(paths.RAW)]


def test_train_and_evaluate_outputs_are_all_cached():
    """DVC's run-cache skips any stage with a `cache: false` output; these must stay restorable."""
    for stage in ("train", "evaluate"):
        declared = PIPELINE["stages"][stage]["do"]
        assert "plots" not in declared and all(isinstance(out, str) for out in declared["outs"])


def test_each_stage_runs_its_own_script():
    for name, stage in PIPELINE["stages"].items():
        cmd = (stage.get("do") or stage)["cmd"]
        assert cmd.startswith(f"python -m stages.{name}")
        assert f"stages/{name}.py" in (stage.get("do") or stage)["deps"]
