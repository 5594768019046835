"""A small, learnable stand-in for Fashion-MNIST in the real IDX format, made in the test."""

import gzip
from pathlib import Path

import torch

from fmnist.data import idx

IMAGE_SHAPE = (28, 28)


def idx_bytes(array: torch.Tensor) -> bytes:
    header = bytes([0, 0, idx.UBYTE, array.dim()])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.to(torch.uint8).contiguous().numpy().tobytes()


def images_and_labels(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class is a fixed random blob pattern plus noise: easy, but not trivial, to learn."""
    templates = torch.rand(10, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(1234)) > 0.6
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    labels = labels[torch.randperm(count, generator=generator)]
    noise = torch.rand(count, *IMAGE_SHAPE, generator=generator) * 120
    images = templates[labels].float() * 135 + noise
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_raw(directory: Path, train: int = 600, test: int = 200, gz: bool = False) -> dict[str, bytes]:
    """Write the four files under their official names; return their (uncompressed) bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = images_and_labels(train, seed=1)
    test_images, test_labels = images_and_labels(test, seed=2)
    contents = {
        idx.TRAIN_IMAGES.name: idx_bytes(train_images),
        idx.TRAIN_LABELS.name: idx_bytes(train_labels),
        idx.TEST_IMAGES.name: idx_bytes(test_images),
        idx.TEST_LABELS.name: idx_bytes(test_labels),
    }
    for name, content in contents.items():
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(content, mtime=0))
        else:
            (directory / name).write_bytes(content)
    return contents
