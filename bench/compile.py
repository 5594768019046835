"""torch.compile against eager for training, side by side in one process, per model.

    python -m bench.compile                   # cnn and resnet18, 10,240 images, 3 epochs each way
    python -m bench.compile mlp --images 50000
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.compile   # fp32 on a bf16 CPU

Each model trains as params.yaml has it (precision included) on a stratified `--images` subset,
once eager and once with `compile: true`, through training.run as the train stage runs it. Only
the training loops are timed (bench.speed's LoopTimer): the first epoch's includes compiling, the
later ones are the steady state. "pays after" is the number of full epochs (of the training split)
before compiling has paid for itself; "never" where compiled steps are no faster.
"""

import argparse
import dataclasses
import statistics

from rich.console import Console
from rich.table import Table

from bench.speed import LoopTimer
from fmnist.core import paths
from fmnist.core.settings import Recipe
from fmnist.data import splits
from fmnist.model import determinism, inference
from fmnist.params import parse
from fmnist.train import training


def loop_seconds(
    recipe: Recipe, data: splits.Splits, runtime: inference.Runtime, compiled: bool, images: int, epochs: int
) -> list[float]:
    sample = dataclasses.replace(recipe, compile=compiled, epochs=epochs, train_subset=images)
    timer = LoopTimer()
    training.run(sample, data, reporter=timer, runtime=runtime)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["cnn", "resnet18"], help="model names under models:")
    parser.add_argument("--images", type=int, default=10240, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs each way (the first includes compiling)")
    args = parser.parse_args()
    data = splits.load_training(paths.PREPARED)
    models = parse.load().models
    table = Table(title=f"Training loop seconds, eager against torch.compile; CPU kind {determinism.cpu_kind()}")
    for column in ("model", "dtype", "eager s/epoch", "compiled: 1st epoch", "later s/epoch", "ratio", "pays after"):
        table.add_column(column, justify="right")
    for name in args.models:
        recipe = models[name].recipe
        runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
        eager = loop_seconds(recipe, data, runtime, False, args.images, args.epochs)
        compiled = loop_seconds(recipe, data, runtime, True, args.images, args.epochs)
        steady_eager, steady_compiled = statistics.mean(eager[1:]), statistics.mean(compiled[1:])
        saved_per_epoch = (steady_eager - steady_compiled) * len(data.train) / args.images
        compiling = compiled[0] - steady_compiled
        pays = f"{compiling / saved_per_epoch:.1f} epochs" if saved_per_epoch > 0 else "never"
        table.add_row(
            name,
            str(runtime.dtype).removeprefix("torch."),
            f"{steady_eager:.2f}",
            f"{compiled[0]:.1f}",
            f"{steady_compiled:.2f}",
            f"{steady_compiled / steady_eager:.2f}x",
            pays,
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
