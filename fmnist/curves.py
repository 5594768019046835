"""The per-epoch curves CSV: one row per epoch, one column per field of engine.EpochLog."""

import csv
import io as stringio
from dataclasses import astuple, fields
from pathlib import Path

from fmnist import engine, io


def write(path: Path, history: list[engine.EpochLog]) -> None:
    columns = [field.name for field in fields(engine.EpochLog)]
    rows = [[f"{v:.6g}" if isinstance(v, float) else v for v in astuple(log)] for log in history]
    io.write_csv(path, columns, rows)


def parse(text: str) -> list[dict[str, float]]:
    return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(stringio.StringIO(text))]


def read(path: Path) -> list[dict[str, float]]:
    return parse(path.read_text())
