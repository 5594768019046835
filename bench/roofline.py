"""Each model's epoch time against its compute lower bound on this machine.

    python -m bench.roofline [--images 4096]

Lower bound = training FLOPs per image (forward + backward, counted by PyTorch's FLOP counter)
x images per epoch / the machine's measured matmul FLOP/s at the model's precision. The measured
epoch time is the project's training loop on a slice of the training split, scaled to the epoch.
"""

import argparse
import json
import time

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from fmnist.core import paths, settings
from fmnist.data import splits as data
from fmnist.model import device, inference, models
from fmnist.params import config
from fmnist.train import training
from fmnist.train.progress import Silent


def matmul_flops_per_second(dtype: torch.dtype, dev: torch.device, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def training_flops_per_image(model: torch.nn.Module, batch: int = 32) -> float:
    x = torch.randn(batch, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def measured_epoch_seconds(cfg: settings.Training, runtime: inference.Runtime, train: data.Split, images: int) -> float:
    subset = train.take(torch.arange(min(images, len(train))))
    trainer = training.Trainer(models.build(cfg.arch, cfg.options), cfg, runtime, subset)
    trainer.train_epoch(subset, 1, Silent())  # warm-up: first-call kernel selection
    started = time.perf_counter()
    trainer.train_epoch(subset, 2, Silent())
    per_image = (time.perf_counter() - started) / (trainer.steps_per_epoch * cfg.batch_size)
    return per_image * (len(train) // cfg.batch_size) * cfg.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096, help="training images timed per model")
    args = parser.parse_args()
    stats = json.loads(paths.STATS.read_text())
    train = data.load_split(paths.PREPARED, "train")
    table = Table(title="Epoch time against the compute lower bound")
    for column in ("model", "precision", "MFLOP/image", "matmul GFLOP/s", "bound s/epoch", "measured s/epoch", "ratio"):
        table.add_column(column, justify="right")
    peaks: dict[torch.dtype, float] = {}
    for name, model in config.load().models.items():
        cfg = model.training
        runtime = inference.Runtime.create(cfg, stats["mean"], stats["std"])
        if runtime.dtype not in peaks:
            peaks[runtime.dtype] = matmul_flops_per_second(runtime.dtype, runtime.device)
        flops = training_flops_per_image(models.build(cfg.arch, cfg.options))
        bound = flops * len(train) / peaks[runtime.dtype]
        device.make_deterministic(cfg.seed, cfg.compile)
        measured = measured_epoch_seconds(cfg, runtime, train.to(runtime.device), args.images)
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
