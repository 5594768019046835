"""Batching and augmentation as batched tensor ops on the training device; train's alone."""

import math

import torch

from fmnist.core.settings import Augment


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None, device: torch.device):
    """Index tensors of consecutive batches; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(device)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def random_draws(settings: Augment) -> int:
    """How many uniform random numbers `augment` uses per image."""
    return 2 * bool(settings.crop) + (settings.flip is True) + 5 * bool(settings.erase) + 2 * jitters(settings)


def jitters(settings: Augment) -> bool:
    return bool(settings.brightness or settings.contrast)


def epoch_randoms(
    steps: int, batch: int, settings: Augment, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Every random number an epoch's augmentation uses: steps x draws x batch, copied to the device once.

    Drawn on the CPU, so a seed gives the same augmentation whatever the device, and in one call, so
    a GPU waits for no copy inside the training step.
    """
    return torch.rand(steps, random_draws(settings), batch, generator=generator).to(device)


def alternating_flips(n: int, seed: int, device: torch.device) -> torch.Tensor:
    """airbench's alternating flip: a fixed random half of the images flipped in odd epochs, the
    other half in even ones, so every image is seen both ways in each pair of epochs."""
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).to(device)


def augment(
    x: torch.Tensor, settings: Augment, randoms: torch.Tensor, *, mean: float, flips: torch.Tensor | None = None
) -> torch.Tensor:
    """Random crop with padding, horizontal flip, random erasing and brightness and contrast, batched,
    on x's device.

    `randoms` holds `random_draws(settings)` rows of at least len(x) uniform numbers each; `mean`,
    the training pixels' mean, which contrast scales about; `flips`, which images to mirror when
    `settings.flip` is "alternate".
    """
    rows = iter(randoms[:, : len(x)])
    if settings.crop:
        x = random_crop(x, settings.crop, next(rows), next(rows))
    if settings.flip is True:
        flips = next(rows) < 0.5
    if settings.flip:
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    if settings.erase:
        x = random_erase(x, settings.erase, *(next(rows) for _ in range(5)))
    if jitters(settings):
        x = color_jitter(x, settings.brightness, settings.contrast, next(rows), next(rows), mean)
    return x


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, u_shift, u_scale, mean: float) -> torch.Tensor:
    """hiverge's jitter for the CIFAR-10 speedrun, in pixels: each image shifted by up to
    `brightness`, then scaled about `mean` by 1 +- up to `contrast` (uniforms u_shift, u_scale)."""
    shift = ((2 * u_shift - 1) * brightness)[:, None, None, None]
    scale = (1 + (2 * u_scale - 1) * contrast)[:, None, None, None]
    return mean + (x - mean + shift) * scale


def random_crop(x: torch.Tensor, pad: int, u_y: torch.Tensor, u_x: torch.Tensor) -> torch.Tensor:
    """Shift each image by up to `pad` pixels each way (uniforms u_y, u_x pick the shift), filling with black."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = (u_y * (2 * pad + 1)).long()
    dx = (u_x * (2 * pad + 1)).long()
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[batch, 0:1, rows, cols].reshape(n, 1, h, w)


def random_erase(x: torch.Tensor, p: float, u_area, u_aspect, u_y, u_x, u_apply) -> torch.Tensor:
    """Zero one rectangle of 2-33% of the area (aspect 0.3-3.3) in a fraction p of the images."""
    n, _, h, w = x.shape
    area = (0.02 + 0.31 * u_area) * h * w
    aspect = torch.exp(math.log(0.3) * (1 - 2 * u_aspect))
    eh = (area * aspect).sqrt().clamp(1, h).floor()
    ew = (area / aspect).sqrt().clamp(1, w).floor()
    y0 = (u_y * (h - eh + 1)).floor()
    x0 = (u_x * (w - ew + 1)).floor()
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    # Rows and columns tested apart, then one AND per pixel, where testing every pixel took eight ops.
    in_rows = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None]) & (u_apply < p)[:, None]
    in_cols = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)
