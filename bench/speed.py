"""Time to accuracy: what a user would otherwise run against this project, side by side.

    python -m bench.speed cnn     # the tutorial CNN script against params.yaml's cnn, to 91%, 93% and 94%,
                                  # then a race to 91% with this project's fastest recipe for it
    python -m bench.speed cnn --race-only   # the race alone (minutes, where the whole takes most of an hour on 2 cores)
    python -m bench.speed mlp     # 784-128-64-10 in the tutorial script against params.yaml's mlp_small

Both run in one process on this machine's data/raw/ and data/prepared/ (run `dvc repro prepare`
first). Test accuracy is measured after every epoch and not timed; of ours, only the training
loop is timed (LoopTimer), not the validation that training.run does after each epoch. The tutorial script keeps its
own recipe (batch 64, Adam 1e-3, fp32, all 60,000 training images); ours is the model's recipe in
params.yaml, on its 50,000 training images, at `precision: auto`. The race's recipe is params.yaml's
with the overrides it prints, so `dvc exp run` with those -S options reproduces it.
"""

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from bench import usual
from bench.log import variant
from fmnist.core import paths
from fmnist.data import splits
from fmnist.model import determinism, device, inference, models
from fmnist.params import parse
from fmnist.train import training
from fmnist.train.progress import Silent
from tools.project import spelled_out


@dataclass(frozen=True)
class Case:
    model: str  # the model in params.yaml this project trains
    targets: tuple[float, ...]  # test accuracies to time
    usual_epochs: int  # the most epochs the tutorial script gets
    usual_model: str  # "tutorial" (the tutorial's CNN) or "same" (the project model's architecture)
    race: dict = field(default_factory=dict)  # overrides of the model's params: the recipe that races to targets[0]


# The cnn recipe for the race to 91%: the fastest of the short ones tried (docs/benchmarks.md) whose
# validation accuracy cleared 91.5%, a margin for the test split
# (python -m bench.trials cnn --vary 'channels=[16,32,64] epochs=2'; its rows are in bench/trials.jsonl).
FAST_CNN = {"channels": [16, 32, 64], "epochs": 2}

CASES = {
    "cnn": Case("cnn", (0.91, 0.93, 0.94), 6, "tutorial", race=FAST_CNN),
    "mlp": Case("mlp_small", (0.875,), 15, "same"),
}


def as_options(name: str, overrides: dict, params: str | Path = "params.yaml") -> str:
    """The overrides as `dvc exp run` options, with `+` where params.yaml lacks the key (the cnn
    takes the global epochs, say)."""
    raw = yaml.safe_load(Path(params).read_text())
    keys = {f"models.{name}.{key}": value for key, value in overrides.items()}
    return " ".join(
        f"-S '{'' if spelled_out(raw, key) else '+'}{key}={json.dumps(value)}'" for key, value in keys.items()
    )


class LoopTimer(Silent):
    """Times each epoch's training loop alone: from its start to the end of its last batch, which a
    progress call marks (made every few batches and at the last; each reads the loss, a device sync).
    Batch norm's recalibration and the validation pass after it are not timed."""

    shows_batches = True  # asks training for those calls; nothing is shown

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.batches, self.started = batches, time.perf_counter()

    def batches_done(self, batches: int, images: int, loss: float) -> None:
        if batches == self.batches:
            self.seconds.append(time.perf_counter() - self.started)


@dataclass
class Race:
    """One training run followed epoch by epoch: when it first reached each target."""

    name: str
    targets: tuple[float, ...]
    reached: dict[float, tuple[int, float]] = field(default_factory=dict)  # target -> (epoch, training seconds)
    rate: float = 0.0  # training images per second over the whole run
    epoch: int = 0
    seconds: float = 0.0
    accuracy: float = 0.0

    def record(self, epoch: int, seconds: float, images: int, accuracy: float) -> None:
        """Epoch `epoch` ended after `seconds` of training in all, each epoch on `images` images."""
        self.epoch, self.seconds, self.accuracy = epoch, seconds, accuracy
        self.rate = epoch * images / seconds
        for target in self.targets:
            if accuracy >= target and target not in self.reached:
                self.reached[target] = (epoch, seconds)
        print(
            f"  {self.name}: epoch {epoch}  {seconds:7.1f} s  {self.rate:9,.0f} img/s  test acc {accuracy:.4f}",
            flush=True,
        )


class Reached(Exception):
    """Ends a run at its target: training.run trains to the last epoch otherwise."""


def ours(model: parse.ModelSettings, race: Race) -> None:
    """The project's training, as the train stage runs it (training.run), until the race's highest
    target; test accuracy after every epoch, not timed."""
    recipe, views = model.recipe, model.evaluation.tta_views
    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    test = splits.load_split(paths.PREPARED, "test").to(runtime.device)
    timer = LoopTimer()

    def after_epoch(trainer: training.Trainer) -> None:
        logits = inference.predict(trainer.model, test.images, runtime, recipe.eval_batch_size, views)
        accuracy = inference.loss_and_accuracy(logits, test.labels)[1]
        race.record(len(trainer.history), sum(timer.seconds), trainer.steps_per_epoch * recipe.batch_size, accuracy)
        if accuracy >= max(race.targets):
            raise Reached

    try:
        training.run(
            recipe, splits.load_training(paths.PREPARED), reporter=timer, on_epoch=after_epoch, runtime=runtime
        )
    except Reached:
        pass


def time_to(run: Race, target: float) -> str:
    if target in run.reached:
        epoch, seconds = run.reached[target]
        return f"{seconds:.1f} (epoch {epoch})"
    return f"not reached in {run.epoch} epochs ({run.seconds:.0f} s, last {run.accuracy:.4f})"


def ratio(baseline: Race, project: Race, target: float) -> str:
    if target not in project.reached:
        return "-"
    ours_seconds = project.reached[target][1]
    if target in baseline.reached:
        return f"{baseline.reached[target][1] / ours_seconds:.1f}x"
    return f">= {baseline.seconds / ours_seconds:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=CASES)
    parser.add_argument(
        "--race-only",
        action="store_true",
        help="only the race to the first target: the tutorial script until it, then the fast recipe",
    )
    args = parser.parse_args()
    case = CASES[args.case]
    targets = case.targets[:1] if args.race_only else case.targets
    raw = yaml.safe_load(Path("params.yaml").read_text())
    model = variant(raw, case.model, {})
    recipe = model.recipe
    where = determinism.describe(device.resolve_device(recipe.device))
    print(f"{case.model}: {recipe.arch} {recipe.options} on {where}; targets {', '.join(f'{t:.1%}' for t in targets)}")

    determinism.make_deterministic(recipe.seed)
    baseline_model = (
        usual.tutorial_cnn() if case.usual_model == "tutorial" else models.build(recipe.arch, recipe.options)
    )
    baseline = Race("tutorial", targets)
    for epoch in usual.train(baseline_model, paths.RAW, max(targets), case.usual_epochs, recipe.seed):
        baseline.record(*epoch)
    project = None
    if not args.race_only:
        project = Race("ours", targets)
        ours(model, project)
    fast = None
    if case.race:
        print(f"race to {case.targets[0]:.0%}, params.yaml with: {as_options(case.model, case.race)}")
        fast = Race("ours, fast", case.targets[:1])
        ours(variant(raw, case.model, case.race), fast)

    table = Table(title=f"{case.model}: the tutorial script against this project")
    for column in ("", "tutorial script", "this project", "ratio"):
        table.add_column(column, justify="right")
    for target in targets if project else ():
        table.add_row(
            f"seconds to {target:.1%}",
            time_to(baseline, target),
            time_to(project, target),
            ratio(baseline, project, target),
        )
    if fast:
        target = case.targets[0]
        table.add_row(
            f"race to {target:.1%} (fastest recipe)",
            time_to(baseline, target),
            time_to(fast, target),
            ratio(baseline, fast, target),
        )
    compared = project or fast
    table.add_row(
        "training images/s", f"{baseline.rate:,.0f}", f"{compared.rate:,.0f}", f"{compared.rate / baseline.rate:.1f}x"
    )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
