"""The whole pipeline's wall time: an earlier revision against this working tree, side by side.

    python -m bench.pipeline                 # against the code before the airbench cnn (BEFORE_AIRBENCH)
    python -m bench.pipeline REV             # against any revision
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.pipeline   # fp32 on a bf16 CPU

Each side is a fresh copy (the revision's files, and this checkout's tracked and untracked files)
in a temporary directory, so both start from nothing, download included, as a fresh clone does.
Each stage runs as plain Python, the way dvc.yaml's `cmd` runs it, and the two sides take turns
stage by stage, so a machine whose speed drifts within the hour slows both alike.
"""

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose cnn was the ResNet-9-style net (92.9% in 10 epochs): the time targets of
# the airbench recipe are set against its pipeline.
BEFORE_AIRBENCH = "3cc99b3"


def checkout(revision: str | None, into: Path) -> Path:
    """A copy of `revision`'s files, or of this checkout's (tracked and untracked, not ignored) for None."""
    into.mkdir(parents=True)
    if revision:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
        tarfile.open(fileobj=BytesIO(archive)).extractall(into, filter="data")
        return into
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source, target = ROOT / name, into / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return into


def commands(project: Path) -> list[tuple[str, str]]:
    """(stage name, command) in dvc.yaml's order, foreach stages expanded over params.yaml's models."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    models = yaml.safe_load((project / "params.yaml").read_text())["models"]
    listed = []
    for name, stage in stages.items():
        if "foreach" in stage:
            listed += [(f"{name}@{key}", stage["do"]["cmd"].replace("${key}", key)) for key in models]
        else:
            listed.append((name, stage["cmd"]))
    return listed


def run(project: Path, command: str) -> float:
    started = time.perf_counter()
    # `python` is this interpreter, as it is for dvc; the stage's output goes to a log beside it.
    with open(project / "bench.log", "a") as log:
        subprocess.run(
            [sys.executable, *command.split()[1:]],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            env={**os.environ, "PYTHONPATH": str(project)},
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "before",
        nargs="?",
        default=BEFORE_AIRBENCH,
        help=f"the git revision to compare with (default {BEFORE_AIRBENCH}, before the airbench cnn)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as scratch:
        sides = {
            args.before: checkout(args.before, Path(scratch) / "before"),
            "this tree": checkout(None, Path(scratch) / "now"),
        }
        plans = {side: dict(commands(project)) for side, project in sides.items()}
        # This tree's order first: a stage only the earlier revision has comes after.
        order = list(dict.fromkeys(stage for plan in reversed(plans.values()) for stage in plan))
        seconds = {side: {} for side in sides}
        for stage in order:
            for side, project in sides.items():
                if stage in plans[side]:
                    seconds[side][stage] = run(project, plans[side][stage])
                    print(f"{side:>12}  {stage:<20} {seconds[side][stage]:7.1f} s", flush=True)
    show(seconds, order)


def show(seconds: dict[str, dict[str, float]], order: list[str]) -> None:
    before, now = seconds
    groups = list(dict.fromkeys(stage.partition("@")[0] for stage in order))
    table = Table(title="pipeline wall time, seconds (every stage as plain Python, side by side)")
    for column in ("stage", before, now):
        table.add_column(column, justify="right")

    def total(side: str, group: str | None = None) -> float:
        return sum(s for stage, s in seconds[side].items() if group in (None, stage.partition("@")[0]))

    for group in groups:
        if group == "train":  # where the time goes: one row per model
            for stage in (stage for stage in order if stage.startswith("train@")):
                table.add_row(
                    stage, *(f"{seconds[side][stage]:.1f}" if stage in seconds[side] else "-" for side in seconds)
                )
        else:
            table.add_row(group, f"{total(before, group):.1f}", f"{total(now, group):.1f}")
    table.add_row("total", f"{total(before):.1f}", f"{total(now):.1f}")
    table.add_row("ratio", "1.00x", f"{total(now) / total(before):.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
