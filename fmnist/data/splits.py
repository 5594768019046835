"""The dataset's splits: classes, stratified splitting, loading, and size checks against them."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fmnist.core.errors import ConfigError, DataError

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x 1 x 28 x 28
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index])

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Splits:
    """What training reads: the two splits, and the training images' statistics for normalisation."""

    train: Split
    val: Split
    mean: float
    std: float


def check_pairs(train_images: torch.Tensor, train_labels: torch.Tensor, test: "Split") -> None:
    """Images and labels must pair up, and labels must name one of the ten classes."""
    for what, images, labels in (("train", train_images, train_labels), ("test", test.images, test.labels)):
        if len(images) != len(labels):
            raise DataError(f"{what}: {len(images)} images but {len(labels)} labels")
        if len(labels) and int(labels.max()) >= len(CLASSES):
            raise DataError(f"{what}: label {int(labels.max())} outside 0-{len(CLASSES) - 1}")


def stratified_indices(labels: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick `size` indices with each class in proportion to its count; return (picked, rest), sorted."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=generator)
    by_class = shuffled[torch.argsort(labels[shuffled], stable=True)]
    counts = torch.bincount(labels, minlength=len(CLASSES))
    quotas = _largest_remainder(counts, size)
    starts = torch.cumsum(counts, 0) - counts
    picked = torch.cat([by_class[s : s + q] for s, q in zip(starts.tolist(), quotas.tolist())])
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[picked] = True
    return mask.nonzero().flatten(), (~mask).nonzero().flatten()


def _largest_remainder(counts: torch.Tensor, size: int) -> torch.Tensor:
    """Integer quotas proportional to counts that add up to exactly `size`."""
    exact = counts.double() * size / counts.sum()
    quotas = exact.floor().long()
    short = size - int(quotas.sum())
    order = torch.argsort(exact - quotas, descending=True, stable=True)
    quotas[order[:short]] += 1
    return quotas


def class_counts(labels: torch.Tensor) -> dict[str, int]:
    counts = torch.bincount(labels, minlength=len(CLASSES)).tolist()
    return dict(zip(CLASSES, counts))


def load_split(directory: Path, name: str) -> Split:
    path = Path(directory) / f"{name}.pt"
    try:
        tensors = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the prepare stage first (dvc repro prepare)") from None
    except Exception as error:  # torch.load raises many types for a damaged file
        raise DataError(f"{path}: unreadable ({type(error).__name__}); rerun dvc repro prepare") from None
    return Split(tensors["images"], tensors["labels"])


def load_training(directory: Path) -> Splits:
    train, val = load_split(directory, "train"), load_split(directory, "val")
    path = Path(directory) / "stats.json"
    try:
        stats = json.loads(path.read_text())
        return Splits(train, val, float(stats["mean"]), float(stats["std"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: unreadable ({type(error).__name__}); rerun dvc repro prepare") from None


def check_size(key: str, value: int, available: int) -> None:
    """Refuse a size parameter (`key` as params.yaml has it) larger than the data it draws from."""
    if value > available:
        raise ConfigError(f"params.yaml: {key} = {value}: must not exceed the {available} images available")
