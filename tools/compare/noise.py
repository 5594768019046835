"""How far a model's test accuracy moves with its seed alone, from the runs bench/trials.jsonl logs.

`python -m bench.trials <model> --seeds 0 1 2 --test` logs them; a row's key is the model, its
recipe's settings away from their defaults (seed among them) and the dtype it trained in.
"""

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from fmnist.core.settings import Recipe

LOG = Path("bench/trials.jsonl")


@dataclass(frozen=True)
class Spread:
    """The standard deviation of test accuracy over `seeds` runs of one recipe."""

    sd: float
    seeds: int

    def beyond(self, change: float) -> bool:
        """Beyond noise: a change over twice the standard deviation of a difference of two runs."""
        return abs(change) > 2 * math.sqrt(2) * self.sd

    def __str__(self) -> str:
        return f"sd {100 * self.sd:.2f} points over {self.seeds} seeds"


def without_seed(changes: dict) -> dict:
    return {key: value for key, value in changes.items() if key != "seed"}


def spread(recipe: Recipe, dtype: str, log: Path = LOG) -> Spread | None:
    """The recipe's spread over seeds in this dtype (any dtype, if none was logged); None under two seeds."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    changes = without_seed(json.loads(json.dumps(recipe.changes())))  # as the log reads back: lists, not tuples
    runs = [
        row
        for row in rows
        if row.get("model") == recipe.name
        and "test" in row
        and "superseded" not in row
        and without_seed(row.get("changes", {})) == changes
    ]
    runs = [row for row in runs if row["dtype"] == dtype] or runs
    by_seed = {row["changes"].get("seed", 0): row["test"] for row in runs}
    if len(by_seed) < 2:
        return None
    return Spread(statistics.stdev(by_seed.values()), len(by_seed))
