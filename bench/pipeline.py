"""The whole pipeline's wall time: an earlier revision against this working tree, side by side.

    python -m bench.pipeline                 # against the code before the airbench cnn (BEFORE_AIRBENCH)
    python -m bench.pipeline REV             # against any revision
    python -m bench.pipeline REV --again train@cnn   # then that stage once more each side, in the other order
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.pipeline   # fp32 on a bf16 CPU

Each side is a fresh copy (the revision's files, and this checkout's tracked and untracked files)
in a temporary directory, so both start from nothing, download included, as a fresh clone does.
Each stage runs as plain Python, the way dvc.yaml's `cmd` runs it, and the two sides take turns
stage by stage, so a machine whose speed drifts within the hour slows both alike. A stage runs
minutes after the other side's, though, so one stage's ratio moves with the drift; --again runs it
once more on each side, this tree first, and the means of the four runs (before, now, now,
before) cancel a steady drift.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tools.project import copy_project, stage_commands

# The last commit whose cnn was the ResNet-9-style net (92.9% in 10 epochs): the time targets of
# the airbench recipe are set against its pipeline.
BEFORE_AIRBENCH = "3cc99b3"


def run(project: Path, argv: list[str]) -> float:
    started = time.perf_counter()
    # `python` is this interpreter, as it is for dvc; the stage's output goes to a log beside it.
    with open(project / "bench.log", "a") as log:
        subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            env={**os.environ, "PYTHONPATH": str(project)},
        )
    return time.perf_counter() - started


def merged(first: list[str], second: list[str]) -> list[str]:
    """One order of both sides' stages that keeps each side's own, so each runs a stage after those
    it needs: `first`'s, with a stage only `second` has right after the one it follows there (the
    earlier revision's configure@<model> stages after download, where this tree has one configure)."""
    order = list(first)
    for index, stage in enumerate(second):
        if stage not in order:
            order.insert(order.index(second[index - 1]) + 1 if index else 0, stage)
    return order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "before",
        nargs="?",
        default=BEFORE_AIRBENCH,
        help=f"the git revision to compare with (default {BEFORE_AIRBENCH}, before the airbench cnn)",
    )
    parser.add_argument("--again", action="append", default=[], metavar="STAGE", help="rerun STAGE, this tree first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as scratch:
        sides = {
            args.before: copy_project(Path(scratch) / "before", args.before),
            "this tree": copy_project(Path(scratch) / "now"),
        }
        plans = {side: dict(stage_commands(project)) for side, project in sides.items()}
        order = merged(list(plans["this tree"]), list(plans[args.before]))
        for stage in args.again:
            if not all(stage in plan for plan in plans.values()):
                parser.error(f"--again {stage}: not a stage of both sides (e.g. train@cnn)")
        seconds = {side: {} for side in sides}
        for stage in order:
            for side, project in sides.items():
                if stage in plans[side]:
                    seconds[side][stage] = run(project, plans[side][stage])
                    print(f"{side:>12}  {stage:<20} {seconds[side][stage]:7.1f} s", flush=True)
        reruns = {
            stage: {side: run(project, plans[side][stage]) for side, project in reversed(sides.items())}
            for stage in args.again
        }
    show(seconds, order)
    for stage, again in reruns.items():
        first = {side: seconds[side][stage] for side in sides}
        means = {side: (first[side] + again[side]) / 2 for side in sides}
        before, now = means.values()
        runs = "; ".join(f"{side} {first[side]:.1f} and {again[side]:.1f} s" for side in sides)
        print(f"{stage}: {runs}; means {before:.1f} and {now:.1f} s, {now / before:.2f}x")


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
