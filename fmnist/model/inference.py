"""Running a model: device and precision, batched logits with test-time views.

Shared by evaluate, predict and train's per-epoch validation.
"""

from dataclasses import dataclass

import torch
from torch import nn

from fmnist.model.device import autocast, resolve_device, resolve_precision, use
from fmnist.model.models import CONVOLUTIONAL


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs, resolved from the settings once."""

    device: torch.device
    dtype: torch.dtype
    channels_last: bool

    @classmethod
    def create(cls, device: str, precision: str, arch: str) -> "Runtime":
        where = resolve_device(device)
        use(where)
        return cls(where, resolve_precision(precision, where), channels_last=arch in CONVOLUTIONAL)

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this device; convolutions run faster on channels-last memory."""
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        return model.to(self.device, memory_format=memory_format)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the memory layout the model runs fastest on."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to floats in [0, 1], what every model takes; augmentation works here, so padding stays black."""
    return images.float() / 255.0


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, runtime: Runtime, batch_size: int, views: int = 1) -> torch.Tensor:
    """Logits (float32) for uint8 images already on the device, in large no-grad batches,
    averaged over `views` test-time augmentations (see `tta_logits`)."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = runtime.input(to_float(images[start : start + batch_size]))
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
