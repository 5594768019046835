"""The per-epoch curves CSV: one row per epoch, one column per field of the training log."""

import csv
import io as stringio
from pathlib import Path

from fmnist import io


def write(path: Path, history: list[dict[str, float]]) -> None:
    """`history`: one dict per epoch, all with the same keys (engine.EpochLog as a dict)."""
    rows = [[f"{v:.6g}" if isinstance(v, float) else v for v in log.values()] for log in history]
    io.write_csv(path, list(history[0]), rows)


def parse(text: str) -> list[dict[str, float]]:
    return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(stringio.StringIO(text))]


def read(path: Path) -> list[dict[str, float]]:
    return parse(path.read_text())
