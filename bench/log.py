"""bench/trials.jsonl: every finished trial, one JSON object a line, keyed on what was trained.

A row's key is its model, the recipe's settings that differ from their declared defaults
(`Recipe.changes()`, so a setting added later at its default leaves every key as it was) and the
dtype it trained in. "cpu" names the CPU kind it ran on ("gpu" too, on CUDA): evidence, never
part of a key. The few rows without "changes" (but an older hash, "recipe") are runs whose
settings no committed params.yaml reproduces: history, which no recipe matches. So are rows with
"superseded": runs of code since changed in what it computes (the reason says how), kept as the
evidence the docs cite but never taken for a run of today's code.
No torch here, so the seed tables can be regenerated on any machine.
"""

import copy
import json
import statistics
from pathlib import Path

from fmnist.core.settings import Recipe
from fmnist.params import parse
from tools.project import set_dotted

LOG = Path("bench/trials.jsonl")


def variant(raw: dict, name: str, overrides: dict) -> parse.ModelSettings:
    """Model `name` of params.yaml (loaded as `raw`) with `overrides`, dotted keys under models.<name>,
    checked as configure checks params.yaml."""
    changed = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        set_dotted(changed, f"models.{name}.{dotted}", value)
    return parse.parse(changed).models[name]


def key(recipe: Recipe, dtype: str, val_size: int | None = None) -> dict:
    """`val_size` only where a run split the data otherwise than data/prepared/ (bench.trials --val-size)."""
    split = {} if val_size is None else {"val_size": val_size}
    # Through JSON, as a logged row reads back: tuples become lists, so equal recipes compare equal.
    return json.loads(json.dumps({"model": recipe.name, "changes": recipe.changes(), "dtype": dtype} | split))


def rows(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def recorded(logged: list[dict], key: dict, test: bool) -> dict | None:
    """The logged run with this key, if there is one (one scored on the test split too, if `test`)."""
    current = (row for row in logged if "superseded" not in row)
    same = (
        row for row in current if {k: row.get(k) for k in {*key, "val_size"}} == key | {"val_size": key.get("val_size")}
    )
    return next((row for row in same if "test" in row or not test), None)


def append(log: Path, row: dict) -> None:
    with log.open("a") as out:
        out.write(json.dumps(row) + "\n")


def summary(values: list[float]) -> str:
    """The mean, and the worst in brackets when there are several."""
    return f"{statistics.mean(values):.4f} ({min(values):.4f})" if len(values) > 1 else f"{values[0]:.4f}"
