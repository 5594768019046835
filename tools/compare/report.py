"""The pull-request report as Markdown: its first line says what changed, then each model that
changed beside its base and its spread over seeds, then the models the change does not reach."""

import json
from pathlib import Path

from tools.compare import runs
from tools.compare.noise import Spread

HEADLINE = ("test_accuracy", "test_macro_f1", "test_loss", "best_val_accuracy")


def param_changes(repo: Path, base: str) -> list[dict]:
    diff = json.loads(runs.dvc(repo, "params", "diff", base, "HEAD", "--json") or "{}")
    return [
        {"param": name, "base": change.get("old"), "new": change.get("new")}
        for params in diff.values()
        for name, change in sorted(params.items())
    ]


def verdict(model: dict) -> str:
    """The test-accuracy change in points and whether seed noise alone could make it."""
    if model["base"] is None:
        return "new model"
    change = model["new"]["test_accuracy"] - model["base"]["test_accuracy"]
    points = f"{100 * change:+.2f} points"
    if model["spread"] is None:
        return f"{points}, noise unknown"
    spread = Spread(**model["spread"])
    return f"{points}, {'beyond' if spread.beyond(change) else 'within'} noise"


def first_line(result: dict) -> str:
    where = f"Fashion-MNIST against `{result['base']}`"
    changed = result["changed"]
    if not changed:
        return f"## {where}: no model changed"
    each = "; ".join(f"{model['model']} {verdict(model)}" for model in changed)
    return f"## {where}: {len(changed)} model{'s' * (len(changed) > 1)} changed ({each})"


def number(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def markdown(result: dict, picture: str | None) -> str:
    lines = [first_line(result), ""]
    if not result["changed"]:
        lines += ["The change reaches no stage that trains or evaluates a model: nothing was retrained.", ""]
    else:
        lines += [
            f"Ran here: {', '.join(result['retrained']) or 'nothing (restored from the run-cache)'}.",
            f"Base rerun here, for like with like: {', '.join(result['retrained_base']) or 'nothing'}.",
            "",
            "| model | metric | base | new | change |",
            "|---|---|---|---|---|",
        ]
        for model in result["changed"]:
            base, new = model["base"] or {}, model["new"] or {}
            for key in HEADLINE:
                change = None if key not in base or key not in new else new[key] - base[key]
                shown = "—" if change is None else f"{change:+.4f}"
                lines.append(
                    f"| {model['model']} | {key} | {number(base.get(key))} | {number(new.get(key))} | {shown} |"
                )
        lines += ["", "| model | test accuracy | seed spread | base made on | new made on |", "|---|---|---|---|---|"]
        for model in result["changed"]:
            spread = "not logged" if model["spread"] is None else str(Spread(**model["spread"]))
            lines.append(
                f"| {model['model']} | {verdict(model)} | {spread} | {model['base_machine']} | {model['new_machine']} |"
            )
        lines += [
            "",
            "Within noise: under twice the standard deviation of a difference of two runs (sd x 2 x sqrt 2), "
            "the sd being the recipe's over the seeds `bench/trials.jsonl` logs "
            "(`python -m bench.trials MODEL --seeds 0 1 2 --test` logs more).",
            "",
        ]
    lines += ["### Parameters changed", ""]
    if result["params"]:
        lines += ["| param | base | new |", "|---|---|---|"]
        lines += [f"| `{p['param']}` | {p['base']} | {p['new']} |" for p in result["params"]]
    else:
        lines.append("None.")
    if result["unchanged"]:
        lines += ["", "### Models the change does not reach (committed figures)", ""]
        lines += ["| model | test accuracy | made on |", "|---|---|---|"]
        for model in result["unchanged"]:
            accuracy = (model["metrics"] or {}).get("test_accuracy")
            lines.append(f"| {model['model']} | {number(accuracy)} | {model['machine']} |")
    if picture:
        lines += ["", "### Validation accuracy per epoch: base and new", "", f"![curves]({picture})"]
    return "\n".join(lines) + "\n"
