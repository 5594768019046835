"""ResNet-18's training step with and without its dead kernel taps, side by side in one process.

    python -m bench.live_taps
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.live_taps   # fp32 on a bf16 CPU

Builds ResNet-18 as params.yaml has it twice with the same weights: as the pipeline trains it, whose
3 x 3 convolutions skip the taps that read only padding (models.LiveTapConv2d), and as plain
nn.Conv2d, which computes them. Times forward, backward and an SGD step on batches of the recipe's
size in its precision, the two taking turns round by round so that drift slows both alike.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from fmnist.model import determinism, inference, models
from fmnist.model.device import autocast
from fmnist.params import parse


def all_taps(model: nn.Module) -> nn.Module:
    for layer in model.modules():
        if isinstance(layer, models.LiveTapConv2d):
            layer.__class__ = nn.Conv2d
    return model


def step_seconds(model: nn.Module, runtime: inference.Runtime, batch: int, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    x = runtime.input(torch.rand(batch, 1, 28, 28, device=runtime.device))
    y = torch.randint(0, models.NUM_CLASSES, (batch,), device=runtime.device)
    started = time.perf_counter()
    for _ in range(steps):
        with autocast(runtime.device, runtime.dtype):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="turns each way (the first is a warm-up)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per turn")
    args = parser.parse_args()
    recipe = parse.load().models["resnet18"].recipe
    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    live = runtime.place(models.build(recipe.arch, recipe.options))
    full = runtime.place(all_taps(models.build(recipe.arch, recipe.options)))
    full.load_state_dict(live.state_dict())
    times: dict[str, list[float]] = {"live": [], "all": []}
    for _ in range(args.rounds):
        times["all"].append(step_seconds(full, runtime, recipe.batch_size, args.steps))
        times["live"].append(step_seconds(live, runtime, recipe.batch_size, args.steps))
    every, live_only = statistics.median(times["all"][1:]), statistics.median(times["live"][1:])
    print(f"CPU kind {determinism.cpu_kind()}; {runtime.device}, {runtime.dtype}, batch {recipe.batch_size}")
    print(f"ms a step: every tap {every * 1000:.0f}, live taps {live_only * 1000:.0f}: {live_only / every:.2f}x")


if __name__ == "__main__":
    main()
