"""Running a trained model: device and precision, normalisation, batched logits with test-time views.

Shared by evaluate, predict and train's per-epoch validation; kept apart from the training loop so
that an edit there leaves evaluation's results, and its stage, alone.
"""

from dataclasses import dataclass

import torch
from torch import nn

from fmnist.device import autocast, resolve_device, resolve_precision, use
from fmnist.models import CONVOLUTIONAL
from fmnist.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs, resolved from the config once."""

    device: torch.device
    dtype: torch.dtype
    mean: float
    std: float
    channels_last: bool

    @classmethod
    def create(cls, cfg: Settings, mean: float, std: float) -> "Runtime":
        device = resolve_device(cfg.device)
        use(device)
        dtype = resolve_precision(cfg.precision, device)
        return cls(device, dtype, mean, std, channels_last=cfg.arch in CONVOLUTIONAL)

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this device; convolutions run faster on channels-last memory."""
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        return model.to(self.device, memory_format=memory_format)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to floats in [0, 1]; augmentation works here, so padding stays black."""
    return images.float() / 255.0


def normalize(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    x = (x - runtime.mean) / runtime.std
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, runtime: Runtime, batch_size: int, views: int = 1) -> torch.Tensor:
    """Logits (float32) for uint8 images already on the device, in large no-grad batches,
    averaged over `views` test-time augmentations (see `tta_logits`)."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(images[start : start + batch_size]), runtime)
        with autocast(runtime.device, runtime.dtype):
            outputs.append(tta_logits(model, x, views))
    return torch.cat(outputs)


def tta_logits(model: nn.Module, x: torch.Tensor, views: int) -> torch.Tensor:
    """1 view: the image. 2: the mean with its mirror image. 6: airbench's weighting, half on those
    two, half on both shifted a pixel up-left and down-right (reflected at the border)."""
    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return (model(x).float() + model(x.flip(3)).float()) / 2

    if views == 1:
        return model(x).float()
    if views == 2:
        return mirrored(x)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = (mirrored(padded[..., :-2, :-2]) + mirrored(padded[..., 2:, 2:])) / 2
    return (mirrored(x) + shifted) / 2


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy
