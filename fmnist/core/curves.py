"""The per-epoch curves CSV: one row per epoch, one column per field of the training log."""

import csv
import io
from pathlib import Path

from fmnist.core import files


def write(path: Path, history: list[dict[str, float]]) -> None:
    """`history`: one dict per epoch, all with the same keys (training.EpochLog.curve())."""
    rows = [[f"{v:.6g}" if isinstance(v, float) else v for v in log.values()] for log in history]
    files.write_csv(path, list(history[0]), rows)


def parse(text: str) -> list[dict[str, float]]:
    return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(io.StringIO(text))]


def read(path: Path) -> list[dict[str, float]]:
    return parse(path.read_text())
