"""Validation accuracy of a model's recipe and its variants, over seeds: sizing and ablations.

    python -m bench.trials cnn --seeds 0 1 2                          # params.yaml's recipe
    python -m bench.trials cnn -S epochs=6 -S 'channels=[48, 96, 96]' # a variant (keys under models.cnn)
    python -m bench.trials cnn --ablation --seeds 0 1 2               # each trick switched off in turn
    python -m bench.trials cnn --seeds 0 1 2 --test                   # the defaults' test accuracy too
    python -m bench.trials cnn --val-size 0 --test                    # a final fit on all 60k: test only

Trains in this process on data/prepared/ (run `dvc repro prepare` first) through the train stage's
own entry point, `fmnist.train.training.run`, with params.yaml read as configure reads it: same
settings (train_subset included), same training, best-validation weights. Scores the validation
split over 1, 2 and 6 test-time views, so the views need no retraining to compare. Test accuracy
only with --test, which is for the committed defaults: choices are made on validation.

Every finished run is appended to --log (bench/log.py says how a row is keyed) and skipped when
found there from this CPU kind, so a long sweep interrupted part-way resumes where it stopped;
--logged tabulates the runs of any CPU kind.
"""

import argparse
import functools
import statistics
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench import log
from fmnist.core import cli, paths, settings
from fmnist.core.settings import Recipe
from fmnist.data import splits
from fmnist.model import determinism, device, inference
from fmnist.params import parse
from fmnist.train import training
from stages import prepare

VIEWS = (1, 2, 6)

# The cnn recipe with one trick taken out: (label, overrides). Test-time views are evaluation only,
# read off the full recipe's runs.
ABLATION = {
    "cnn": [
        ("full recipe", {}),
        ("whitening stem -> trainable conv + BN", {"whiten": False}),
        ("dirac init -> default init", {"dirac": False}),
        ("frozen BN scale -> trainable", {"bn_scale": True}),
        ("BN bias lr x64 -> x1", {"bias_lr_factor": 1}),
        ("lookahead -> off", {"lookahead": False}),
        ("label smoothing 0.2 -> 0", {"label_smoothing": 0.0}),
        ("logit scale 0.25 -> 1", {"logit_scale": 1.0}),
        ("alternating flip -> random flip", {"augment.flip": True}),
        ("no shifts -> random 2-px shifts", {"augment.crop": 2}),
        ("brightness and contrast jitter -> none", {"augment.brightness": 0.0, "augment.contrast": 0.0}),
    ],
}


def machine(runtime: inference.Runtime) -> dict[str, str]:
    """What a run ran on, for its row: evidence, never part of its key."""
    gpu = {"gpu": determinism.describe(runtime.device)} if runtime.device.type == "cuda" else {}
    return {"cpu": determinism.cpu_kind()} | gpu


def parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def training_splits(raw: dict, val_size: int | None) -> splits.Splits:
    """data/prepared/'s, or with another val_size, the raw files split afresh as prepare would."""
    if val_size is None:
        return splits.load_training(paths.PREPARED)
    parts, stats = prepare.split(settings.Data(seed=parse.parse(raw).data.seed, val_size=val_size))
    return splits.Splits(parts["train"], parts["val"], stats["mean"], stats["std"])


def check(recipe: Recipe, data: splits.Splits) -> None:
    """What the train stage refuses, refused here too; and several processes, as a trial trains in this one."""
    device.check_machine(recipe, recipe.nproc)
    splits.check_size(recipe.key("train_subset"), recipe.train_subset, len(data.train))
    if recipe.nproc > 1:
        raise recipe.refuse("nproc", "bench.trials trains in one process (use 1)")


def trial(model: parse.ModelSettings, data: splits.Splits, runtime: inference.Runtime, test: bool) -> dict:
    """Train one recipe as the train stage would; its best-validation weights scored over each view count."""
    recipe = model.recipe
    check(recipe, data)
    trainer = training.run(recipe, data, runtime=runtime)
    trainer.model.load_state_dict(trainer.best_state)

    def accuracy(split: splits.Split, views: int) -> float:
        logits = inference.predict(trainer.model, split.images, runtime, recipe.eval_batch_size, views)
        return round(inference.loss_and_accuracy(logits, split.labels)[1], 4)

    best = trainer.best_epoch()
    result = {
        "best_epoch": best.epoch,
        # As the stage's timing.json counts it: each epoch's training and validation.
        "train_seconds": round(sum(epoch.seconds for epoch in trainer.history), 1),
        "val": {str(views): accuracy(trainer.val, views) for views in VIEWS} if len(trainer.val) else {},
    }
    if test:
        test_split = splits.load_split(paths.PREPARED, "test").to(runtime.device)
        result["test"] = accuracy(test_split, model.evaluation.tta_views)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        type=parse_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a key under models.<model>, as YAML (repeatable)",
    )
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="'KEY=VALUE ...'",
        help="one variant of the recipe: space-separated overrides (repeatable: a row each)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--ablation", action="store_true", help="the model's recipe with each trick removed in turn")
    parser.add_argument("--test", action="store_true", help="also score the test split (the defaults only)")
    parser.add_argument("--log", type=Path, default=log.LOG, help="finished runs, appended")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown, for the docs")
    parser.add_argument("--logged", action="store_true", help="train nothing: tabulate the runs --log holds")
    parser.add_argument(
        "--val-size", type=int, help="split data/raw/ as prepare would with this val_size (0: train on all 60k)"
    )
    args = parser.parse_args()
    base = dict(args.overrides)
    if args.ablation:
        variants = [(label, base | change) for label, change in ABLATION[args.model]]
    elif args.vary:
        variants = [(text, base | dict(map(parse_override, text.split()))) for text in args.vary]
    else:
        variants = [("params.yaml", base)]

    raw = yaml.safe_load(Path("params.yaml").read_text())
    # One runtime per device, precision and arch: resolving `auto` on CUDA claims a GPU each time.
    runtime_for = functools.cache(inference.Runtime.create)
    recipe = log.variant(raw, args.model, base).recipe
    runtime = runtime_for(recipe.device, recipe.precision, recipe.arch)
    print(f"{args.model} on {determinism.describe(runtime.device)}, {runtime.dtype}; CPU kind {determinism.cpu_kind()}")
    data = None  # loaded at the first run the log lacks
    logged = log.rows(args.log)
    rows = []
    for label, overrides in variants:
        for seed in args.seeds:
            model = log.variant(raw, args.model, overrides | {"seed": seed})
            runtime = runtime_for(model.recipe.device, model.recipe.precision, model.recipe.arch)
            key = log.key(model.recipe, str(runtime.dtype), args.val_size)
            # A run from another CPU kind is evidence (--logged shows it), but sizing here means timing here.
            row = log.recorded(logged, key if args.logged else key | machine(runtime), args.test)
            if row is None and args.logged:
                print(f"  {label} seed {seed}: not in {args.log}")
                continue
            if row is None:
                if data is None:
                    data = training_splits(raw, args.val_size)
                row = key | machine(runtime) | {"overrides": overrides | {"seed": seed}}
                row |= trial(model, data, runtime, args.test)
                log.append(args.log, row)
                logged.append(row)
            print(
                f"  {label} seed {seed}: val {row['val']}, "
                f"{row['train_seconds']} s" + (f", test {row['test']}" if args.test else ""),
                flush=True,
            )
            rows.append((label, row))
    show(rows, args.test, args.markdown)


def show(rows: list[tuple[str, dict]], test: bool, markdown: bool) -> None:
    title = "validation accuracy (mean over seeds; worst seed in brackets), best epoch's weights"
    table = Table(title=title)
    columns = ["variant", "seeds", *(f"val, {v} view{'s' * (v > 1)}" for v in VIEWS), "train s"] + ["test"] * test
    for column in columns:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant in dict.fromkeys(label for label, _ in rows):
        runs = [row for label, row in rows if label == variant]
        cells = [log.summary([row["val"][str(v)] for row in runs]) if runs[0]["val"] else "-" for v in VIEWS]
        seconds = f"{statistics.mean(row['train_seconds'] for row in runs):.0f}"
        tested = [log.summary([row["test"] for row in runs])] if test else []
        table.add_row(variant, str(len(runs)), *cells, seconds, *tested)
    if not markdown:
        Console(width=160).print(table)
        return
    print(f"{title}:\n\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for cells in zip(*(column.cells for column in table.columns)):
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    cli.run(main)
