"""dvc.yaml, params.yaml and the code agree with one another."""

import ast
import json
import re
from pathlib import Path

import yaml

from fmnist.core import paths
from fmnist.params import config

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = config.load(ROOT / "params.yaml")
MODELS = list(PARAMS.models)


def declared(stage: str) -> dict:
    return PIPELINE["stages"][stage].get("do") or PIPELINE["stages"][stage]


def fmnist_imports(module: str) -> set[str]:
    """The fmnist modules one module imports under DVC, by name (fmnist.x), from its source.

    Imports inside `if "DVC_STAGE" not in os.environ:` run only when a stage runs as plain Python
    (settings.read_current), so they are not what DVC must hash.
    """
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in walk_under_dvc(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "fmnist":
            found |= {f"fmnist.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmnist."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fmnist.")}
    return found


def walk_under_dvc(node: ast.AST):
    yield node
    for child in ast.iter_child_nodes(node):
        if not (isinstance(child, ast.If) and "DVC_STAGE" in ast.unparse(child.test)):
            yield from walk_under_dvc(child)


def import_closure(module: str) -> set[str]:
    """Every source file `python -m <module>` runs: the module and all fmnist modules it reaches."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(fmnist_imports(current))
    files = {current.replace(".", "/") + ".py" for current in seen}
    # Importing any fmnist module runs the package's __init__ first (it sets cuBLAS's workspace).
    return files | {"fmnist/__init__.py"} if any(f.startswith("fmnist/") for f in files) else files


def stage_closure(stage: str) -> set[str]:
    command = re.fullmatch(r"python -m (stages\.\w+)( \$\{key\})?", declared(stage)["cmd"])
    assert command, f"{stage}: cmd is not `python -m stages.<name>`"
    return import_closure(command.group(1))


def test_every_stage_depends_on_exactly_the_code_it_imports():
    for stage in PIPELINE["stages"]:
        code = {dep for dep in declared(stage)["deps"] if dep.endswith(".py")}
        needed = stage_closure(stage)
        missing, extra = sorted(needed - code), sorted(code - needed)
        assert not missing, f"{stage}: imports {', '.join(missing)} but does not list it in deps"
        assert not extra, f"{stage}: lists {', '.join(extra)} in deps but never imports it"


def test_closure_follows_imports_through_library_modules():
    assert "fmnist/models.py" in stage_closure("evaluate")  # via checkpoint, not imported directly
    assert "fmnist/__init__.py" in stage_closure("evaluate")
    assert "fmnist/training.py" not in stage_closure("configure")


def test_configure_lists_every_global_and_the_models_own_section():
    assert declared("configure")["params"] == [*config.GLOBALS, "models.${key}"]


def test_train_and_evaluate_read_settings_from_configure_not_params():
    configured = {str(paths.train_config("${key}")), str(paths.evaluate_config("${key}"))}
    assert set(declared("configure")["outs"]) == configured
    for stage, path in (("train", paths.train_config("${key}")), ("evaluate", paths.evaluate_config("${key}"))):
        assert "params" not in declared(stage) and str(path) in declared(stage)["deps"]


def test_every_model_and_its_export_is_a_registered_artifact():
    artifacts = PIPELINE["artifacts"]
    dashed = {name: name.replace("_", "-") for name in MODELS}
    assert set(artifacts) == set(dashed.values()) | {f"{art}-export" for art in dashed.values()}
    for name, cfg in PARAMS.models.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", dashed[name])
        weights, export = artifacts[dashed[name]], artifacts[f"{dashed[name]}-export"]
        assert weights["path"] == str(paths.model(name)) and export["path"] == str(paths.export(name))
        for artifact in (weights, export):
            assert artifact["type"] == "model" and artifact["desc"] and artifact["meta"] == {"arch": cfg.training.arch}
        assert export["labels"] == ["export", "pt2"]


def test_overlay_plots_list_every_model():
    overlays = [
        definition
        for plot in PIPELINE["plots"]
        if isinstance(plot, dict)
        for definition in plot.values()
        if "y" in definition and isinstance(definition["y"], dict)
    ]
    assert len(overlays) == 2
    for definition in overlays:
        assert {Path(path).stem for path in definition["y"]} == set(MODELS)


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
        str(paths.provenance(key)),
        str(paths.confusion(key)),
        str(paths.confusion_png(key)),
        str(paths.predictions_png(key)),
    }
    published = paths.published(key)
    assert {str(result) for result in published} == (outputs("train") - {str(paths.model(key))}) | outputs("evaluate")
    assert {next(iter(out)) for out in PIPELINE["stages"]["summarize"]["outs"]} == {
        str(paths.METRICS),
        str(paths.PLOTS),
        str(paths.REPORTS),
    }
    assert published[paths.provenance(key)].parts[0] == "reports"  # git-tracked, but not read as metrics
    assert all(
        copy.parts[0] in ("metrics", "plots") for result, copy in published.items() if result != paths.provenance(key)
    )
    assert PIPELINE["metrics"] == [str(paths.METRICS)]
    assert outputs("export") == {str(paths.export(key))}
    assert PIPELINE["stages"]["prepare"]["outs"] == [str(paths.PREPARED)]
    assert PIPELINE["stages"]["download"]["outs"] == [str(paths.RAW)]


def test_stage_outputs_are_all_cached():
    """DVC's run-cache skips any stage with a `cache: false` output; these must stay restorable."""
    for stage in ("configure", "train", "evaluate", "export"):
        for kind in ("outs", "plots"):
            for out in declared(stage).get(kind, []):
                assert isinstance(out, str) or next(iter(out.values())).get("cache", True), (stage, out)


def test_live_curves_are_declared_as_a_plot_of_train():
    [plot] = declared("train")["plots"]
    assert next(iter(plot)) == str(paths.curves("${key}"))


def test_each_stage_runs_its_own_script():
    for name in PIPELINE["stages"]:
        assert declared(name)["cmd"].startswith(f"python -m stages.{name}")
        assert f"stages/{name}.py" in declared(name)["deps"]


def test_the_readme_results_table_is_the_committed_leaderboard():
    """The README's figures cannot go stale: its table is summarize's leaderboard, line for line."""
    board = (ROOT / paths.REPORTS / "leaderboard.md").read_text()
    assert board in (ROOT / "README.md").read_text()


def test_the_readmes_seed_0_row_is_the_committed_cnn():
    metrics = json.loads((ROOT / paths.METRICS / "cnn.json").read_text())
    row = f"| 0 (`dvc repro`, the table above) | {metrics['test_accuracy']:.4f} |"
    assert row in (ROOT / "README.md").read_text()


DTYPES = ("torch.bfloat16", "torch.float32")  # the seed tables' two precisions, in their order


def logged_test_runs(model: str, dtype: str) -> list[dict]:
    """Seeds 0-2 of the model's recipe as params.yaml has it now, as
    `python -m bench.trials MODEL --seeds 0 1 2 --test` logged them in bench/trials.jsonl."""
    from bench import trials

    runs = []
    for seed in (0, 1, 2):
        recipe = trials.with_overrides(model, {"seed": seed}, ROOT / "params.yaml").training.fingerprint()
        run = trials.recorded(ROOT / "bench" / "trials.jsonl", {"model": model, "recipe": recipe, "dtype": dtype}, True)
        assert run, f"{model}: no logged test run of seed {seed} in {dtype}"
        runs.append(run)
    return runs


def test_the_readmes_seed_table_is_the_logged_trials_of_the_committed_recipe():
    from bench import trials

    rows = {
        line.split("|")[1].strip(): line.split("|")[2:4]
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith(("| 0 (`dvc repro`", "| 1 |", "| 2 |", "| mean (worst) |"))
    }
    for column, dtype in enumerate(DTYPES):
        tests = [run["test"] for run in logged_test_runs("cnn", dtype)]
        for seed, test in enumerate(tests):
            shown = next(cells for label, cells in rows.items() if label.startswith(str(seed)))
            assert shown[column].strip() == f"{test:.4f}", (seed, dtype)
        assert rows["mean (worst)"][column].strip() == trials.summary(tests), dtype


def seed_tables(text: str) -> dict[str, list[list[str]]]:
    """docs/results.md's per-seed tables, each keyed by the model its `--test` command above it names."""
    tables: dict[str, list[list[str]]] = {}
    model = None
    for line in text.splitlines():
        if match := re.match(r"python -m bench.trials (\w+) --seeds 0 1 2 --test", line):
            model = match[1]
        elif model and re.match(r"\| (0 \(|1 \||2 \||mean)", line):
            tables.setdefault(model, []).append([cell.strip().strip("*") for cell in line.split("|")[2:-1]])
    return tables


def test_the_docs_seed_tables_are_the_logged_trials_of_the_committed_recipes():
    """Every cell of the cnn's and the mlp's seed tables but the mean seconds, both precisions."""
    from bench import trials

    tables = seed_tables((ROOT / "docs" / "results.md").read_text())
    assert set(tables) == {"cnn", "mlp"}
    for model, rows in tables.items():
        views = str(trials.with_overrides(model, {}, ROOT / "params.yaml").evaluation.tta_views)
        for offset, dtype in zip((0, 3), DTYPES):
            runs = logged_test_runs(model, dtype)
            for seed, (row, run) in enumerate(zip(rows, runs)):
                cells = [f"{run['val'][views]:.4f}", f"{run['test']:.4f}", f"{run['train_seconds']:.1f}"]
                assert row[offset : offset + 3] == cells, (model, seed, dtype)
            vals, tests = [run["val"][views] for run in runs], [run["test"] for run in runs]
            assert rows[3][offset : offset + 2] == [trials.summary(vals), trials.summary(tests)], (model, dtype)


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
    from bench.trials import spelled_out

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    overrides = documented_overrides()
    assert len(overrides) > 10
    wrong = [(where, key) for where, key in overrides if spelled_out(raw, key.lstrip("+")) == key.startswith("+")]
    assert not wrong, wrong


def test_the_race_recipe_is_printed_as_options_dvc_accepts():
    from bench import speed

    options = speed.as_options("cnn", {"channels": [16, 32, 64], "epochs": 4}, ROOT / "params.yaml")
    assert options == "-S 'models.cnn.channels=[16, 32, 64]' -S '+models.cnn.epochs=4'"
