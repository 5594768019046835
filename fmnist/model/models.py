"""Architectures by name: one small builder each, behind a normalising first layer.

Every model takes N x 1 x 28 x 28 pixels in [0, 1] and normalises them itself, with the training
split's mean and std held as buffers: the weights carry everything needed to use them.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

NUM_CLASSES = 10
PIXELS = 28 * 28


class Normalize(nn.Module):
    """(x - mean) / std with the training split's statistics, saved with the weights."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def logreg() -> nn.Module:
    """Multinomial logistic regression: one linear layer on the raw pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, NUM_CLASSES))


def mlp(hidden: list[int], dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = PIXELS
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers, nn.Linear(width, NUM_CLASSES))


class Whiten(nn.Conv2d):
    """A frozen patch-whitening convolution of k x k patches, 1 -> 2k^2 channels, no padding: with
    the k = 2 every model here uses, 8 channels and 28 -> 27 pixels.

    Its filters are the eigenvectors of the training patches' covariance, each scaled by
    1/sqrt(eigenvalue + eps), and their negatives: the net starts from decorrelated inputs, which
    airbench measured as its largest single saving (34 -> 21 epochs to 94% on CIFAR-10).
    """

    def __init__(self, kernel: int = 2):
        super().__init__(1, self.channels(kernel), kernel)
        self.weight.requires_grad_(False)

    @staticmethod
    def channels(kernel: int = 2) -> int:
        """Output channels: one filter per patch pixel, and its negative."""
        return 2 * kernel * kernel

    @torch.no_grad()
    def fit(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the filters from normalised images x (N x 1 x 28 x 28); float64, so any device agrees."""
        k = self.kernel_size[0]
        patches = x.double().unfold(2, k, 1).unfold(3, k, 1).reshape(-1, k * k)
        patches = patches - patches.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / (eigenvalues + eps).sqrt()[:, None]).reshape(-1, 1, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))


class BatchNorm(nn.BatchNorm2d):
    """Batch norm as airbench sets it: fast running statistics and, unless `scale`, a weight frozen at 1."""

    def __init__(self, width: int, scale: bool):
        super().__init__(width, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(scale)


def conv(inputs: int, outputs: int, dirac: bool) -> nn.Conv2d:
    layer = nn.Conv2d(inputs, outputs, 3, padding="same", bias=False)
    if dirac:  # the first `inputs` filters start as the identity: an implicit residual path
        nn.init.dirac_(layer.weight.data[:inputs])
    return layer


class Residual(nn.Sequential):
    """x + the layers applied to x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def conv_group(inputs: int, outputs: int, dirac: bool, bn_scale: bool, residual: bool) -> list[nn.Module]:
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU; pooling first leaves BN a quarter of the pixels.

    With `residual`, airbench96's group: a third conv -> BN -> GELU after the second, and the two
    added to what the first gave, so the group is deeper without being harder to train.
    """
    first = [conv(inputs, outputs, dirac), nn.MaxPool2d(2), BatchNorm(outputs, bn_scale), nn.GELU()]
    depth = 2 if residual else 1
    rest = [m for _ in range(depth) for m in (conv(outputs, outputs, dirac), BatchNorm(outputs, bn_scale), nn.GELU())]
    return first + ([Residual(*rest)] if residual else rest)


class GlobalMaxPool(nn.Module):
    """Max over the spatial dimensions (airbench's max-pool 3 on the last 3 x 3 maps, for any depth);
    unlike adaptive max-pool, its CUDA backward is deterministic.

    max with indices, not amax: amax's gradient goes to every value equal to the maximum, and
    TorchInductor, recomputing a bf16 map in fp32, finds none equal and divides by zero (NaN).
    """

    def forward(self, x):
        return x.flatten(2).max(dim=2).values


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def cnn(
    channels: list[int], whiten: bool, dirac: bool, bn_scale: bool, logit_scale: float, residual: bool
) -> nn.Module:
    """airbench94's net for 28 x 28 greyscale: a whitening stem, one conv group per width
    (27 -> 13 -> 6 -> 3 pixels), global max-pool, a bias-free linear head with scaled logits.

    Without `whiten` the stem is a plain trainable 2x2 conv with batch norm, of the same shape.
    """
    width = Whiten.channels()
    stem: list[nn.Module] = [Whiten()] if whiten else [nn.Conv2d(1, width, 2, bias=False), BatchNorm(width, bn_scale)]
    layers = [*stem, nn.GELU()]
    for size in channels:
        layers += conv_group(width, size, dirac, bn_scale, residual)
        width = size
    head = [GlobalMaxPool(), nn.Linear(width, NUM_CLASSES, bias=False), Scale(logit_scale)]
    return nn.Sequential(*layers, *head)


def live_taps(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """The first and last kernel taps (along one axis) that read a real pixel at some output position."""
    outputs = (size + 2 * padding - kernel) // stride + 1
    live = [i for i in range(kernel) if any(0 <= o * stride - padding + i < size for o in range(outputs))]
    return live[0], live[-1]


class LiveTapConv2d(nn.Conv2d):
    """A zero-padded convolution that skips the kernel taps which, at this input size, read only padding.

    On a 1 x 1 map a 3 x 3 convolution with padding 1 is its centre tap alone, and on a 2 x 2 map at
    stride 2 it is its lower-right 2 x 2: ResNet-18's last stage runs on such maps here. The output
    and every gradient are the same (a dead tap's gradient is zero); oneDNN would compute the dead
    taps all the same, and its backward pass on such maps is slow (`python -m bench.live_taps`
    measures the step with and without them).
    """

    def live(self, x: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        """The live taps' first and last row and column for input x."""
        rows = live_taps(x.shape[-2], self.kernel_size[0], self.stride[0], self.padding[0])
        cols = live_taps(x.shape[-1], self.kernel_size[1], self.stride[1], self.padding[1])
        return rows, cols

    def taps(self, x: torch.Tensor) -> int:
        (top, bottom), (left, right) = self.live(x)
        return (bottom - top + 1) * (right - left + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.live(x)
        if rows == (0, self.kernel_size[0] - 1) and cols == (0, self.kernel_size[1] - 1):
            return super().forward(x)
        weight = self.weight[:, :, rows[0] : rows[1] + 1, cols[0] : cols[1] + 1]
        # The dead taps were those that read padding alone: what padding the live ones still read.
        top, left = self.padding[0] - rows[0], self.padding[1] - cols[0]
        bottom = self.padding[0] - (self.kernel_size[0] - 1 - rows[1])
        right = self.padding[1] - (self.kernel_size[1] - 1 - cols[1])
        x = nn.functional.pad(x, (left, right, top, bottom))
        return nn.functional.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)


def resnet18(downsample: int, whiten: bool) -> nn.Module:
    """torchvision's ResNet-18 with a 3x3 stem for 28 x 28 greyscale input.

    `downsample` is the stem's reduction: 1 keeps 28 x 28 (no max-pool), 2 adds the max-pool,
    4 also strides the stem convolution. Each step costs 4x fewer FLOPs and some accuracy.
    With `whiten`, the cnn's frozen whitening layer and a GELU come first (27 x 27 maps).
    """
    import torchvision  # here, not at the top: importing it costs seconds every other model avoids

    model = torchvision.models.resnet18(num_classes=NUM_CLASSES)
    inputs = Whiten.channels() if whiten else 1
    model.conv1 = nn.Conv2d(inputs, 64, 3, stride=2 if downsample == 4 else 1, padding=1, bias=False)
    if whiten:
        model.conv1 = nn.Sequential(Whiten(), nn.GELU(), model.conv1)
    if downsample == 1:
        model.maxpool = nn.Identity()
    for layer in model.modules():
        if type(layer) is nn.Conv2d and layer.kernel_size != (1, 1):
            layer.__class__ = LiveTapConv2d  # the same parameters and function; see its docstring
    return model


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "logreg": logreg,
    "mlp": mlp,
    "cnn": cnn,
    "resnet18": resnet18,
}
CONVOLUTIONAL = {"cnn", "resnet18"}


def build(arch: str, options: dict, mean: float = 0.0, std: float = 1.0) -> nn.Sequential:
    """The architecture behind its normalisation; a checkpoint's buffers replace the placeholder statistics."""
    return nn.Sequential(Normalize(mean, std), ARCHITECTURES[arch](**options))


@torch.no_grad()
def fit_to_data(model: nn.Sequential, images: torch.Tensor) -> None:
    """Set what the model derives from training images (pixels in [0, 1]) before its first step:
    the whitening filters, from the normalised images' 2x2 patches."""
    normalized = model[0](images)
    for m in model.modules():
        if isinstance(m, Whiten):
            m.fit(normalized)


def size(model: nn.Module) -> dict[str, int]:
    """Parameters, and multiply-adds for one 28 x 28 image: every convolution's and linear layer's,
    counted by hooks on one forward pass in eval mode. (PyTorch's FlopCounterMode counts the same
    but imports TorchDynamo, a second of every evaluate stage.)"""
    multiply_adds = 0

    def count(layer: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal multiply_adds
        if isinstance(layer, nn.Conv2d):
            taps = layer.taps(inputs[0]) if isinstance(layer, LiveTapConv2d) else math.prod(layer.kernel_size)
            multiply_adds += output.numel() * layer.in_channels // layer.groups * taps
        else:
            multiply_adds += output.numel() * layer.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28, device=parameter.device, dtype=parameter.dtype))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return {"parameters": sum(p.numel() for p in model.parameters()), "multiply_adds": multiply_adds}
