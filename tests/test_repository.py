"""dvc.yaml, params.yaml and the code agree with one another."""

import ast
import dataclasses
import json
import re
import subprocess
from pathlib import Path

import yaml

from fmnist.core import paths, settings
from fmnist.params import parse
from tools.project import ROOT, spelled_out, stage_commands

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = parse.load(ROOT / "params.yaml")
MODELS = list(PARAMS.models)


def declared(stage: str) -> dict:
    return PIPELINE["stages"][stage].get("do") or PIPELINE["stages"][stage]


def source(module: str) -> Path:
    """The file a module's code is in: its .py, or its package's __init__.py."""
    path = ROOT / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def is_module(name: str) -> bool:
    return source(name).is_file()


def imports(module: str) -> set[str]:
    """The project's modules (fmnist.*, stages.*, tools.*) that `module` imports, by name: at the top or
    inside a function, which runs as surely, only later."""
    found = set()
    for node in ast.walk(ast.parse(source(module).read_text())):
        if isinstance(node, ast.Import):
            names = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: a relative import, which this walk would miss"
            # `from fmnist.core import files` imports the module fmnist.core.files; `from x import name`, x alone.
            names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in ("fmnist", "stages", "tools") and is_module(name)}
    return found


def closure(module: str) -> set[str]:
    """Every project module `python -m <module>` can run: what it imports, what those import, and
    the packages around each (importing fmnist.core.files runs fmnist/__init__.py and
    fmnist/core/__init__.py first)."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            parts = current.split(".")
            todo += [".".join(parts[:end]) for end in range(1, len(parts))]
            todo += imports(current)
    return seen


def packages(modules: set[str]) -> set[str]:
    """The folders of fmnist/ that modules are in (fmnist.core.files: fmnist/core)."""
    return {"/".join(module.split(".")[:2]) for module in modules if module.count(".") and module.startswith("fmnist.")}


def stage_modules() -> dict[str, str]:
    """Each stage of dvc.yaml and the module its command runs, whatever the model."""
    modules = {}
    for name, argv in stage_commands(ROOT):
        assert argv[:2] == ["python", "-m"], f"{name}: its cmd is not `python -m <module>`"
        modules[name.split("@")[0]] = argv[2]
    return modules


def test_every_stage_depends_on_exactly_the_packages_and_scripts_it_imports():
    """DVC reruns a stage when a folder in its deps changes: it must list every package of fmnist/
    its command can reach, so no edit goes unseen, and no other, so no edit reruns it for nothing."""
    for stage, module in stage_modules().items():
        reached, deps = closure(module), set(declared(stage)["deps"])
        listed = {dep for dep in deps if dep.startswith("fmnist/")}
        assert packages(reached) == listed, f"{stage}: reaches {sorted(packages(reached))}, lists {sorted(listed)}"
        scripts = {source(m).relative_to(ROOT).as_posix() for m in reached if m.startswith("stages.")}
        assert scripts == {dep for dep in deps if dep.startswith("stages/")}, stage


def test_the_top_packages_which_no_stage_lists_hold_no_code():
    """fmnist/__init__.py and stages/__init__.py run before every stage, yet no stage depends on
    them: what they may hold is a docstring, which no result can depend on."""
    for init in ("fmnist/__init__.py", "stages/__init__.py"):
        body = ast.parse((ROOT / init).read_text()).body
        assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body), init


def test_closure_follows_imports_through_library_modules_and_functions():
    assert "fmnist.report.export" in closure("stages.evaluate")
    assert "fmnist.model.device" in closure("fmnist.report.export")  # via fmnist.model.inference
    assert {"fmnist", "fmnist.model", "fmnist.report"} <= closure(
        "fmnist.report.export"
    )  # the packages' __init__ run first
    assert packages(closure("stages.configure")) == {"fmnist/core", "fmnist/params"}
    assert "fmnist.predict.predict" in closure("fmnist.__main__")  # imported inside a function
    assert packages({"fmnist", "fmnist.core", "fmnist.core.files"}) == {"fmnist/core"}


def modules_under(name: str) -> list[str]:
    """The module `name`, or every module of the package or folder `name`."""
    folder = ROOT / name.replace(".", "/")
    if not folder.is_dir():
        return [name]
    return [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in sorted(folder.rglob("*.py"))]


# Imports run one way, so that an edit reruns only what lies downstream of it: core is below
# everything, data reads files, a model is built and run without training, a report or params.yaml;
# training never waits on a report or a check of params.yaml; predict is the CLI's, no stage's;
# tools/ (the pull-request report, the offline installer) drive the library, never the reverse.
NEVER_REACHES = {
    "fmnist": ("tools",),
    "fmnist.core": ("fmnist.data", "fmnist.model", "fmnist.train", "fmnist.report", "fmnist.params", "fmnist.predict"),
    "fmnist.data": ("fmnist.model", "fmnist.train", "fmnist.report", "fmnist.params", "fmnist.predict"),
    "fmnist.model": ("fmnist.train", "fmnist.report", "fmnist.params"),
    "stages.train": ("fmnist.report", "fmnist.params"),
    "stages": ("fmnist.predict", "tools"),
}


def test_imports_run_one_way():
    for where, forbidden in NEVER_REACHES.items():
        for module in modules_under(where):
            wrong = sorted(m for m in closure(module) if m.startswith(forbidden))
            assert not wrong, f"{module} reaches {', '.join(wrong)}"


def test_configure_alone_reads_params_yaml_and_every_key_of_it():
    """One stage per file read: configure validates all of params.yaml, which DVC hands it key by key."""
    top_level = [f.name for f in dataclasses.fields(settings.ParamsFile)]
    assert declared("configure")["params"] == top_level
    assert set(yaml.safe_load((ROOT / "params.yaml").read_text())) == set(top_level)  # DVC fails on a missing one
    assert [stage for stage in PIPELINE["stages"] if "params" in declared(stage)] == ["configure"]


def test_later_stages_depend_on_the_settings_configure_wrote_that_they_read():
    assert declared("configure")["outs"] == [str(paths.CONFIGS)]
    key = "${key}"
    reads = {
        "download": set(),
        "prepare": {paths.DATA_CONFIG},
        "train": {paths.train_config(key)},
        # The model's whole folder (train.json and evaluate.json): one `dvc exp show` column, not two.
        "evaluate": {paths.train_config(key).parent},
        "summarize": {paths.CONFIGS},  # which models there are, and all their settings for the cards
    }
    assert set(reads) == set(PIPELINE["stages"]) - {"configure"}
    for stage, configs in reads.items():
        deps = {dep for dep in declared(stage)["deps"] if dep.split("/")[0] == str(paths.CONFIGS)}
        assert deps == {str(config) for config in configs}, stage


def test_every_model_and_its_export_is_a_registered_artifact():
    artifacts = PIPELINE["artifacts"]
    dashed = {name: name.replace("_", "-") for name in MODELS}
    assert set(artifacts) == set(dashed.values()) | {f"{art}-export" for art in dashed.values()}
    for name, model in PARAMS.models.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", dashed[name])
        weights, export = artifacts[dashed[name]], artifacts[f"{dashed[name]}-export"]
        assert weights["path"] == str(paths.model(name)) and export["path"] == str(paths.export(name))
        for artifact in (weights, export):
            assert artifact["type"] == "model" and artifact["desc"]
            assert artifact["meta"] == {"arch": model.recipe.arch}
        assert export["labels"] == ["export", "pt2"]


def test_the_overlaid_curves_are_the_long_csv_drawn_by_model():
    """One file holds every model's curves, so adding a model needs no edit here; the template colours by model."""
    plots = [plot for plot in PIPELINE["plots"] if isinstance(plot, dict)]
    overlays = [
        definition for plot in plots for definition in plot.values() if definition.get("template") == "by_model"
    ]
    assert len(overlays) == 2
    for definition in overlays:
        assert list(definition["y"]) == [str(paths.ALL_CURVES)] and definition["template"] == "by_model"
    template = json.loads((ROOT / ".dvc" / "plots" / "by_model.json").read_text())
    assert template["encoding"]["color"]["field"] == "model"


def outputs(stage: str) -> set[str]:
    return {
        next(iter(out)) if isinstance(out, dict) else out
        for kind in ("outs", "plots")
        for out in declared(stage).get(kind, [])
    }


def test_stage_outputs_are_where_the_code_writes():
    key = "${key}"
    assert outputs("train") == {str(paths.model(key)), str(paths.curves(key)), str(paths.timing(key))}
    assert outputs("evaluate") == {
        str(paths.test_metrics(key)),
        str(paths.details(key)),
        str(paths.provenance(key)),
        str(paths.confusion(key)),
        str(paths.confusion_png(key)),
        str(paths.predictions_png(key)),
        str(paths.export(key)),
    }
    published = paths.published(key)
    # The weights and the export: DVC's cache alone; the metrics: evaluate writes them for git itself.
    unpublished = {str(paths.model(key)), str(paths.export(key)), str(paths.test_metrics(key))}
    assert {str(result) for result in published} == (outputs("train") | outputs("evaluate")) - unpublished
    assert outputs("summarize") == {str(paths.PLOTS), str(paths.REPORTS)}
    # DVC reads every file under metrics/ as metrics: the headline numbers alone go there, the
    # rest where git tracks it without adding columns to `dvc exp show`.
    assert PIPELINE["metrics"] == [str(paths.METRICS)]
    assert paths.test_metrics(key).parent == paths.METRICS
    assert not any(copy.parts[0] == str(paths.METRICS) for copy in published.values())
    for result in (paths.details(key), paths.provenance(key), paths.timing(key)):
        assert published[result].parts[0] == str(paths.REPORTS), result
    for result in (paths.curves(key), paths.confusion(key), paths.confusion_png(key), paths.predictions_png(key)):
        assert published[result].parts[0] == str(paths.PLOTS), result
    assert outputs("prepare") == {str(paths.PREPARED)}
    assert outputs("download") == {str(paths.RAW)}


def test_stage_outputs_are_all_cached_but_the_metrics_evaluate_writes_for_git():
    """DVC's run-cache skips any stage with a `cache: false` output; training must stay restorable.
    Evaluate gives its up for metrics that are each run's own (it re-scores a restored model)."""
    for stage in ("download", "configure", "prepare", "train", "evaluate"):
        for kind in ("outs", "plots"):
            for out in declared(stage).get(kind, []):
                uncached = not isinstance(out, str) and not next(iter(out.values())).get("cache", True)
                assert not uncached or (stage, next(iter(out))) == ("evaluate", "metrics/${key}.json"), (stage, out)


def test_the_readme_results_table_is_the_leaderboard_committed_at_head():
    """The README's figures cannot go stale: its table is summarize's leaderboard as committed,
    line for line. Read from git, not the workspace: a `make repro` on other hardware rewrites the
    workspace's copy with that machine's figures, which leaves the committed README right."""
    committed = subprocess.run(
        ["git", "show", f"HEAD:{paths.REPORTS}/leaderboard.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert committed.startswith("| model |") and committed in (ROOT / "README.md").read_text()


def documented_overrides() -> list[tuple[str, str]]:
    """Every `-S KEY=VALUE` the docs, README, params.yaml, workflows and notebooks give `dvc exp run`
    (not bench.trials', whose keys sit under one model), as (where, KEY with any leading +)."""
    files = [
        ROOT / "README.md",
        ROOT / "params.yaml",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
    ]
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"""-S\s+['"]?(\+?[A-Za-z_][\w.]*)=""", line):
                before = line[: match.start()]
                if before.rfind("bench.trials") <= before.rfind("dvc exp"):  # both -1 on a continued line
                    found.append((f"{path.name}:{number}", match[1]))
    return found


def test_every_documented_dvc_override_names_a_key_params_yaml_has_or_appends_one():
    """DVC's Hydra overrides refuse `-S models.cnn.seed=1` where params.yaml has no such key: a key
    it lacks needs `+` (and one it has must not have it), or the command a reader copies fails."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    overrides = documented_overrides()
    assert len(overrides) > 10
    wrong = [(where, key) for where, key in overrides if spelled_out(raw, key.lstrip("+")) == key.startswith("+")]
    assert not wrong, wrong


def test_the_race_recipe_is_printed_as_options_dvc_accepts():
    from bench import speed

    options = speed.as_options("cnn", {"channels": [16, 32, 64], "epochs": 4}, ROOT / "params.yaml")
    assert options == "-S 'models.cnn.channels=[16, 32, 64]' -S '+models.cnn.epochs=4'"
