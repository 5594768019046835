"""The pull-request report: changed params, metric changes, leaderboard and curves, base vs new.

Numbers come from DVC itself (`dvc params diff`, `dvc metrics diff`), so the report says what
DVC says; only the curve pictures are drawn here, because DVC's Vega HTML cannot go in a comment.
"""

import json
import subprocess
import sys
from pathlib import Path

from fmnist.core import curves, paths
from fmnist.core.errors import FmnistError

HEADLINE = ("test_accuracy", "test_macro_f1", "test_loss", "best_val_accuracy")


def command(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise FmnistError(f"{' '.join(args)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def dvc_json(*args: str) -> dict:
    return json.loads(command(sys.executable, "-m", "dvc", *args, "--json") or "{}")


def param_changes(base: str) -> list[dict]:
    diff = dvc_json("params", "diff", base)
    return [
        {"param": name, "base": change.get("old"), "new": change.get("new")}
        for params in diff.values()
        for name, change in sorted(params.items())
    ]


def metric_changes(base: str) -> list[dict]:
    """One row per model and headline metric, straight from `dvc metrics diff --all`."""
    diff = dvc_json("metrics", "diff", base, "--all")
    rows = []
    for path, metrics in sorted(diff.items()):
        for key in HEADLINE:
            if key in metrics:
                change = metrics[key]
                rows.append(
                    {
                        "file": path,
                        "model": Path(path).stem,
                        "metric": key,
                        "base": change.get("old"),
                        "new": change.get("new"),
                        "change": change.get("diff"),
                    }
                )
    return sorted(rows, key=lambda row: (row["model"], HEADLINE.index(row["metric"])))


def curves_at(rev: str | None, directory: Path = paths.CURVES) -> dict[str, list[dict]]:
    """Every model's per-epoch curves at a git revision (None = the working tree)."""
    if rev is None:
        files = {p.stem: p.read_text() for p in sorted(directory.glob("*.csv"))}
    else:
        listing = subprocess.run(
            ["git", "ls-tree", "--name-only", rev, f"{directory}/"], capture_output=True, text=True
        )
        names = [line for line in listing.stdout.splitlines() if line.endswith(".csv")]
        files = {Path(name).stem: command("git", "show", f"{rev}:{name}") for name in names}
    return {name: curves.parse(text) for name, text in files.items()}


def number(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def signed(value) -> str:
    return "—" if value is None else f"{value:+.4g}"


def markdown(base: str, params: list[dict], metrics: list[dict], leaderboard: str, picture: str | None) -> str:
    lines = [f"## Fashion-MNIST: this change against `{base}`", ""]
    if all(row["base"] is None for row in metrics):
        lines += [f"The base `{base}` has no metrics: every value below is new.", ""]
    lines += ["### Parameters changed", ""]
    if params:
        lines += ["| param | base | new |", "|---|---|---|"]
        lines += [f"| `{p['param']}` | {number(p['base'])} | {number(p['new'])} |" for p in params]
    else:
        lines.append("None.")
    lines += ["", "### Metrics", "", "| model | metric | base | new | change |", "|---|---|---|---|---|"]
    lines += [
        f"| {m['model']} | {m['metric']} | {number(m['base'])} | {number(m['new'])} | {signed(m['change'])} |"
        for m in metrics
    ]
    lines += ["", "### Leaderboard (this change)", "", leaderboard.strip(), ""]
    if picture:
        lines += ["### Curves: base (left) and this change (right)", "", f"![curves]({picture})", ""]
    return "\n".join(lines)
