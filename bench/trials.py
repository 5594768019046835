"""Validation accuracy of a model's recipe and its variants, over seeds: sizing and ablations.

    python -m bench.trials cnn --seeds 0 1 2                          # params.yaml's recipe
    python -m bench.trials cnn -S epochs=6 -S 'channels=[48, 96, 96]' # a variant (keys under models.cnn)
    python -m bench.trials cnn --ablation --seeds 0 1 2               # each trick switched off in turn
    python -m bench.trials cnn --seeds 0 1 2 --test                   # the defaults' test accuracy too

Trains in this process on data/prepared/ (run `dvc repro prepare` first), as train@<model> does:
same settings, same Trainer, best-validation weights. Scores the validation split over 1, 2 and 6
test-time views, so the views need no retraining to compare. Test accuracy only with --test,
which is for the committed defaults: choices are made on validation.

Every finished run is appended to --log (JSON lines) and skipped when found there, so a long sweep
interrupted part-way resumes where it stopped.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from fmnist.core import paths
from fmnist.data import splits as data
from fmnist.model import device, inference, models
from fmnist.params import config
from fmnist.train import training
from fmnist.train.progress import Silent

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
        ("logit scale 1/9 -> 1", {"logit_scale": 1.0}),
        ("alternating flip -> random flip", {"augment.flip": True}),
        ("random 2-px shifts -> none", {"augment.crop": 0}),
    ],
}


def with_overrides(name: str, overrides: dict, params: str | Path = "params.yaml") -> config.Model:
    """The model's params.yaml section with `overrides` (dotted keys under models.<name>), validated as usual."""
    raw = yaml.safe_load(Path(params).read_text())
    for dotted, value in overrides.items():
        section = raw["models"][name]
        *parents, key = dotted.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[key] = value
    return config.parse(raw).models[name]


def spelled_out(raw: dict, dotted: str) -> bool:
    """Whether params.yaml, loaded as `raw`, writes this dotted key. DVC's `-S KEY=VALUE` sets only
    such a key (its Hydra overrides refuse the others); `-S +KEY=VALUE` adds one it lacks."""
    section = raw
    for part in dotted.split("."):
        if not isinstance(section, dict) or part not in section:
            return False
        section = section[part]
    return True


def parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def trial(model: config.Model, test: bool) -> dict:
    """Train one recipe as train@<model> would; its best-validation weights scored over each view count."""
    cfg = model.training
    stats = json.loads(paths.STATS.read_text())
    runtime = inference.Runtime.create(cfg, stats["mean"], stats["std"])
    train, val = (data.load_split(paths.PREPARED, split).to(runtime.device) for split in ("train", "val"))
    if cfg.train_subset:
        train = train.take(data.stratified_indices(train.labels, cfg.train_subset, cfg.seed)[0])
    device.make_deterministic(cfg.seed, cfg.compile)
    trainer = training.Trainer(models.build(cfg.arch, cfg.options), cfg, runtime, train)
    started = time.perf_counter()
    trainer.fit(train, val, Silent())
    seconds = time.perf_counter() - started
    trainer.model.load_state_dict(trainer.best_state)

    def accuracy(split: data.Split, views: int) -> float:
        logits = inference.predict(trainer.model, split.images, runtime, cfg.eval_batch_size, views)
        return round(inference.loss_and_accuracy(logits, split.labels)[1], 4)

    best = max(trainer.history, key=lambda log: log.val_accuracy)
    result = {
        "best_epoch": best.epoch,
        "train_seconds": round(seconds, 1),
        "val": {str(views): accuracy(val, views) for views in VIEWS},
    }
    if test:
        test_split = data.load_split(paths.PREPARED, "test").to(runtime.device)
        result["test"] = accuracy(test_split, model.evaluation.tta_views)
    return result


def recorded(log: Path, key: dict, test: bool) -> dict | None:
    """The logged run of this recipe, if there is one (one scored on the test split too, if `test`)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return next((row for row in rows if {k: row.get(k) for k in key} == key and ("test" in row or not test)), None)


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
    parser.add_argument("--log", type=Path, default=Path("bench/trials.jsonl"), help="finished runs, appended")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown, for the docs")
    parser.add_argument("--logged", action="store_true", help="train nothing: tabulate the runs --log holds")
    args = parser.parse_args()
    base = dict(args.overrides)
    if args.ablation:
        variants = [(label, base | change) for label, change in ABLATION[args.model]]
    elif args.vary:
        variants = [(text, base | dict(map(parse_override, text.split()))) for text in args.vary]
    else:
        variants = [("params.yaml", base)]

    cfg = with_overrides(args.model, base).training
    where = device.resolve_device(cfg.device)
    dtype = str(device.resolve_precision(cfg.precision, where))
    print(f"{args.model} on {device.describe(where)}, {dtype}")
    rows = []
    for label, overrides in variants:
        for seed in args.seeds:
            model = with_overrides(args.model, overrides | {"seed": seed})
            # The resolved recipe, not the overrides: a row stays true when params.yaml's defaults move.
            key = {"model": args.model, "recipe": model.training.fingerprint(), "dtype": dtype}
            row = recorded(args.log, key, args.test)
            if row is None and args.logged:
                print(f"  {label} seed {seed}: not in {args.log}")
                continue
            if row is None:
                row = key | {"overrides": overrides | {"seed": seed}} | trial(model, args.test)
                with args.log.open("a") as log:
                    log.write(json.dumps(row) + "\n")
            print(
                f"  {label} seed {seed}: val {row['val']}, "
                f"{row['train_seconds']} s" + (f", test {row['test']}" if args.test else ""),
                flush=True,
            )
            rows.append((label, row))
    show(rows, args.test, args.markdown)


def summary(values: list[float]) -> str:
    """The mean, and the worst in brackets when there are several."""
    return f"{statistics.mean(values):.4f} ({min(values):.4f})" if len(values) > 1 else f"{values[0]:.4f}"


def show(rows: list[tuple[str, dict]], test: bool, markdown: bool) -> None:
    title = "validation accuracy (mean over seeds; worst seed in brackets), best epoch's weights"
    table = Table(title=title)
    columns = ["variant", "seeds", *(f"val, {v} view{'s' * (v > 1)}" for v in VIEWS), "train s"] + ["test"] * test
    for column in columns:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant in dict.fromkeys(label for label, _ in rows):
        runs = [row for label, row in rows if label == variant]
        cells = [summary([row["val"][str(v)] for row in runs]) for v in VIEWS]
        seconds = f"{statistics.mean(row['train_seconds'] for row in runs):.0f}"
        tested = [summary([row["test"] for row in runs])] if test else []
        table.add_row(variant, str(len(runs)), *cells, seconds, *tested)
    if not markdown:
        Console(width=160).print(table)
        return
    print(f"{title}:\n\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for cells in zip(*(column.cells for column in table.columns)):
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
