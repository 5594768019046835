"""Each model's epoch time against its compute lower bound on this machine.

    python -m bench.roofline [--images 4096]

Lower bound = training FLOPs per image (forward + backward, counted by PyTorch's FLOP counter)
x images per epoch / the machine's measured matmul FLOP/s at the model's precision. The measured
epoch time is the project's training (training.run, as the train stage runs it) on a stratified
`--images` subset of the training split for two epochs, the second's training loop timed and
scaled to an epoch (train_subset's, if set).
"""

import argparse
import dataclasses
import time

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from bench.speed import LoopTimer
from fmnist.core import paths
from fmnist.core.settings import Recipe
from fmnist.data import splits
from fmnist.model import determinism, inference, models
from fmnist.params import parse
from fmnist.train import training


def matmul_flops_per_second(dtype: torch.dtype, dev: torch.device, size: int = 2048, seconds: float = 2.0) -> float:
    """A square matmul's sustained rate: warmed up, then a loop of back-to-back products timed as a
    whole (a best single call flatters: it can catch a boost clock or a warm cache)."""
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)

    def loop(repeats: int) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    once = loop(3) / 3  # warm-up: first-call kernel selection, page faults
    repeats = max(5, round(seconds / once))
    return 2 * size**3 * repeats / loop(repeats)


def training_flops_per_image(model: torch.nn.Module, batch: int = 32) -> float:
    x = torch.randn(batch, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def epoch_images(recipe: Recipe, data: splits.Splits) -> int:
    """The images an epoch of the recipe trains on, whole batches only."""
    images = min(recipe.train_subset or len(data.train), len(data.train))
    return max(images // recipe.batch_size, 1) * recipe.batch_size


def measured_epoch_seconds(recipe: Recipe, data: splits.Splits, runtime: inference.Runtime, images: int) -> float:
    """The first epoch warms up (first-call kernel selection); the second's loop is timed per image."""
    sample = dataclasses.replace(recipe, epochs=2, train_subset=min(images, epoch_images(recipe, data)))
    timer = LoopTimer()
    trainer = training.run(sample, data, reporter=timer, runtime=runtime)
    per_image = timer.seconds[1] / min(trainer.steps_per_epoch * recipe.batch_size, len(trainer.train))
    return per_image * epoch_images(recipe, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096, help="training images timed per model")
    args = parser.parse_args()
    data = splits.load_training(paths.PREPARED)
    print(f"CPU kind {determinism.cpu_kind()}; the bound assumes the matmul rate below is the machine's peak")
    table = Table(title="Epoch time against the compute lower bound")
    for column in ("model", "precision", "MFLOP/image", "matmul GFLOP/s", "bound s/epoch", "measured s/epoch", "ratio"):
        table.add_column(column, justify="right")
    peaks: dict[torch.dtype, float] = {}
    for name, model in parse.load().models.items():
        recipe = model.recipe
        runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
        if runtime.dtype not in peaks:
            peaks[runtime.dtype] = matmul_flops_per_second(runtime.dtype, runtime.device)
        flops = training_flops_per_image(models.build(recipe.arch, recipe.options))
        bound = flops * epoch_images(recipe, data) / peaks[runtime.dtype]
        measured = measured_epoch_seconds(recipe, data, runtime, args.images)
        table.add_row(
            name,
            str(runtime.dtype).removeprefix("torch."),
            f"{flops / 1e6:.2f}",
            f"{peaks[runtime.dtype] / 1e9:.0f}",
            f"{bound:.1f}",
            f"{measured:.1f}",
            f"{measured / bound:.1f}x",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
