"""The pull-request report: what a change does to each model, measured like for like and set
against seed noise.

    python -m tools.compare --base main [--out report]        (make pr-report BASE=main)

Compares the last commit with BASE, each in a scratch worktree (runs.py), this checkout untouched:
1. DVC says which models the change reaches. A change to the docs, or to code no stage runs,
   reaches none: nothing trains, and the report's first line says "no model changed".
2. Each model it reaches is trained and evaluated here (or restored from DVC's run-cache).
3. So is that model's base, unless BASE's committed figures were made on this kind of machine in
   this precision: a difference is then the change's alone, not the CPU's.
4. Each test-accuracy change is set against the recipe's spread over seeds (noise.py).
Writes OUT/report.md (the comment), OUT/report.json (the numbers) and OUT/curves.png, drawn from
the Vega-Lite spec `dvc plots` uses.
"""

import argparse
from pathlib import Path

from fmnist.core import cli, curves, files, paths, settings
from fmnist.core.errors import FmnistError
from fmnist.model import determinism
from tools.compare import noise, report, runs, vega


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--out", default="report", type=Path, help="directory for the report files")
    args = parser.parse_args()
    repo = Path.cwd()
    try:
        base = runs.command(repo, "git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}").strip()
    except FmnistError:
        raise FmnistError(f"{args.base}: no such commit here (git fetch it first?)") from None
    try:
        base_lock = runs.command(repo, "git", "show", f"{base}:dvc.lock")
    except FmnistError:
        raise FmnistError(f"{args.base} has no dvc.lock: nothing ran there to compare with") from None

    with runs.worktree(repo, "HEAD") as head, runs.worktree(repo, base) as old:
        stages = runs.reached(head, base_lock)
        reached = sorted({stage.split("@")[1] for stage in stages if stage.startswith(("train@", "evaluate@"))})
        machine = {name: this_machine(head, name) for name in reached}
        ran = runs.evaluate(head, reached, machine)
        existed = [name for name in reached if (old / paths.test_metrics(name)).exists()]
        rerun = [name for name in existed if runs.provenance(old, name, committed=True).get("machine") != machine[name]]
        if existed:
            runs.dvc(old, "repro", "--quiet", "configure")  # the base recipes, for their spread over seeds
        ran_base = runs.evaluate(old, rerun, machine)
        models = [changed(head, old, name, name in rerun) for name in reached]
        others = [unchanged(head, name) for name in sorted(set(models_in(head)) - set(reached))]
        picture = draw_curves(head, old, reached, rerun, args.out / "curves.png")

    result = {
        "base": args.base,
        "stages": stages,
        "retrained": ran,
        "retrained_base": ran_base,
        "params": report.param_changes(repo, base),
        "changed": models,
        "unchanged": others,
    }
    files.write_json(args.out / "report.json", result)
    text = report.markdown(result, picture.name if picture else None)
    files.write_text(args.out / "report.md", text)
    print(text.splitlines()[0].removeprefix("## "))
    print(f"report: {args.out / 'report.md'}")


def this_machine(tree: Path, name: str) -> str:
    """The machine tag evaluate would record for this model here (its device and precision settings)."""
    from fmnist.model import device

    recipe = settings.Recipe.read(tree / paths.train_config(name))
    where = device.resolve_device(recipe.device)
    return determinism.machine(where, device.resolve_precision(recipe.precision, where))


def models_in(tree: Path) -> list[str]:
    return [path.stem for path in (tree / paths.METRICS).glob("*.json")]


def changed(head: Path, old: Path, name: str, rerun: bool) -> dict:
    new_made = runs.provenance(head, name)
    base_recipe = old / paths.train_config(name)
    spread = None
    if base_recipe.exists():
        spread = noise.spread(settings.Recipe.read(base_recipe), new_made.get("dtype", ""))
    return {
        "model": name,
        "base": runs.read_json(old / paths.test_metrics(name)),
        "new": runs.read_json(head / paths.test_metrics(name)),
        "base_machine": runs.provenance(old, name, committed=not rerun).get("machine", "unknown"),
        "new_machine": new_made.get("machine", "unknown"),
        "spread": None if spread is None else {"sd": spread.sd, "seeds": spread.seeds},
    }


def unchanged(head: Path, name: str) -> dict:
    return {
        "model": name,
        "metrics": runs.read_json(head / paths.test_metrics(name)),
        "machine": runs.provenance(head, name, committed=True).get("machine", "unknown"),
    }


def draw_curves(head: Path, old: Path, reached: list[str], rerun: list[str], out: Path) -> Path | None:
    """Validation accuracy per epoch, base and new, of the models the change reaches."""
    rows = []
    for name in reached:
        base = old / (paths.curves(name) if name in rerun else paths.CURVES / f"{name}.csv")
        for rev, path in (("base", base), ("new", head / paths.curves(name))):
            if path.exists():
                rows += [{"rev": rev, "model": name, **row} for row in curves.read(path)]
    if not rows:
        return None
    spec = vega.by_model(rows, "val_accuracy", "Validation accuracy per epoch", head / ".dvc" / "plots")
    files.write_bytes(out, vega.png(spec))
    return out


if __name__ == "__main__":
    cli.run(main)
