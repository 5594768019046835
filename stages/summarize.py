"""Stage summarize: publish every model's results for git, then a leaderboard, overlaid curves and model cards.

Train and evaluate write into the DVC-cached results/, so DVC's run-cache can restore them; this
stage copies them into the git-tracked plots/ and reports/ that `dvc plots` reads. (The metrics
evaluate writes into git-tracked metrics/ itself.)
"""

import csv
import json

from rich.console import Console
from rich.table import Table

from fmnist.core import cli, curves, files, paths
from fmnist.core.errors import DataError
from fmnist.report import cards, leaderboard, plots


def main() -> None:
    try:
        summarize(paths.models())
    except FileNotFoundError as error:  # the stages before it have not run (plain Python, in the wrong order)
        raise DataError(f"{error.filename}: missing; run the stages before summarize first (dvc repro)") from None


def summarize(names: list[str]) -> None:
    for orphan in (path for path in paths.METRICS.glob("*.json") if path.stem not in names):
        orphan.unlink()  # a model params.yaml no longer names: its evaluate stage, which wrote this, is gone
    for name in names:
        for result, copy in paths.published(name).items():
            files.write_bytes(copy, result.read_bytes())

    rows = leaderboard.rank([{"model": name, **read_json(paths.test_metrics(name))} for name in names])
    rows = [{key: row[key] for key, _, _ in leaderboard.COLUMNS if key in row} for row in rows]
    files.write_json(paths.REPORTS / "leaderboard.json", rows)
    files.write_text(paths.REPORTS / "leaderboard.md", leaderboard.markdown(rows))

    histories = {name: curves.read(paths.curves(name)) for name in names}
    curves.write(paths.ALL_CURVES, [{"model": name, **row} for name, rows in histories.items() for row in rows])
    # Not one quantity: training's loss is the objective (label smoothing, augmentation, dropout),
    # validation's the plain cross-entropy, so the axis says so and the gap is not all overfitting.
    plots.curves(
        histories,
        ("train_loss", "val_loss"),
        "loss: training objective (dashed), validation cross-entropy",
        paths.IMAGES / "curves_loss.png",
    )
    plots.curves(histories, ("train_accuracy", "val_accuracy"), "accuracy", paths.IMAGES / "curves_accuracy.png")
    stats = read_json(paths.STATS)
    for name in names:
        with open(paths.confusion(name), newline="") as rows_file:
            confusions = [(row["actual"], row["predicted"]) for row in csv.DictReader(rows_file)]
        files.write_text(
            paths.model_card(name),
            cards.card(
                name,
                read_json(paths.train_config(name)),
                read_json(paths.evaluate_config(name)),
                read_json(paths.test_metrics(name)) | read_json(paths.details(name)),
                read_json(paths.provenance(name)),
                stats,
                confusions,
            ),
        )
    show(rows)


def read_json(path) -> dict:
    return json.loads(path.read_text())


def show(rows: list[dict]) -> None:
    table = Table(title="Fashion-MNIST leaderboard (test set)")
    for _, title, _ in leaderboard.COLUMNS:
        table.add_column(title, justify="left" if title == "model" else "right")
    for row in rows:
        table.add_row(*leaderboard.cells(row))
    Console().print(table)


if __name__ == "__main__":
    cli.run(main)
