"""What a user would otherwise run: the PyTorch tutorial's training script, unchanged in spirit.

torchvision's FashionMNIST dataset with ToTensor + Normalize per sample, DataLoader(batch_size=64,
shuffle=True) on all 60,000 training images, Adam 1e-3, fp32. `tutorial_cnn` is the classic
two-convolution CNN of the tutorials; the MLP comparison passes this project's mlp_small instead.
"""

import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms


def tutorial_cnn() -> nn.Module:
    """conv 32, conv 64, max-pool, dropout, FC 128, dropout, FC 10 (the PyTorch MNIST example)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


def datasets(raw_dir: Path):
    """torchvision's FashionMNIST over our data/raw/ (it wants root/FashionMNIST/raw/<files>)."""
    root = Path(tempfile.mkdtemp(prefix="usual-"))
    (root / "FashionMNIST").mkdir()
    (root / "FashionMNIST" / "raw").symlink_to(raw_dir.resolve())
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    train = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform)
    test = torchvision.datasets.FashionMNIST(str(root), train=False, transform=transform)
    return train, test


@torch.no_grad()
def test_accuracy(model: nn.Module, test) -> float:
    model.eval()
    correct = 0
    for x, y in DataLoader(test, batch_size=1000):
        correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(test)


def train(model: nn.Module, raw_dir: Path, target: float, max_epochs: int, seed: int = 0):
    """Train until test accuracy reaches `target`; after each epoch, yield (epoch, training seconds so far,
    images per epoch, accuracy)."""
    torch.manual_seed(seed)
    train_set, test_set = datasets(raw_dir)
    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        started = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        seconds += time.perf_counter() - started
        accuracy = test_accuracy(model, test_set)  # not timed
        yield epoch, seconds, len(train_set), accuracy
        if accuracy >= target:
            return
