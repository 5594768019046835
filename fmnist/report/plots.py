"""Matplotlib pictures people can look at: confusion matrix, prediction grid, training curves."""

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display needed; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from fmnist.core import files  # noqa: E402

if TYPE_CHECKING:  # summarize draws without torch: importing it would cost every run seconds
    import torch

plt.rcParams["svg.hashsalt"] = "fmnist"  # fixed, so reruns render identically


def confusion_matrix(counts: "torch.Tensor", classes: tuple[str, ...], title: str, path: Path) -> None:
    figure, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(counts.numpy(), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    threshold = counts.max().item() / 2
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = counts[i, j].item()
            ax.text(j, i, value, ha="center", va="center", fontsize=8, color="white" if value > threshold else "black")
    figure.tight_layout()
    files.save_figure(path, figure)
    plt.close(figure)


def prediction_grid(
    images: "torch.Tensor",
    actual: "torch.Tensor",
    predicted: "torch.Tensor",
    classes: tuple[str, ...],
    title: str,
    path: Path,
    columns: int = 8,
) -> None:
    """Test images with their predicted class; wrong predictions in red with the actual class."""
    rows = (len(images) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.75))
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, want, got in zip(axes.flat, images, actual.tolist(), predicted.tolist()):
        ax.imshow(image.squeeze(0).numpy(), cmap="gray_r")
        right = want == got
        label = classes[got] if right else f"{classes[got]}\n(is {classes[want]})"
        ax.set_title(label, fontsize=7, color="green" if right else "red")
    figure.suptitle(title)
    figure.tight_layout()
    files.save_figure(path, figure)
    plt.close(figure)


def draw_curves(ax, histories: dict[str, list[dict]], keys: tuple[str, ...], ylabel: str) -> None:
    """One line per model and key (e.g. train and validation loss) against epoch."""
    styles = ("-",) if len(keys) == 1 else ("--", "-")  # dashed: training, solid: validation
    for i, (name, rows) in enumerate(sorted(histories.items())):
        epochs = [row["epoch"] for row in rows]
        for key, style in zip(keys, styles):
            # A one-epoch run is a single point, which a line alone would not show.
            ax.plot(
                epochs,
                [row[key] for row in rows],
                style,
                color=f"C{i % 10}",
                label=f"{name} {key}",
                marker="o" if len(rows) == 1 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=7)


def curves(histories: dict[str, list[dict]], keys: tuple[str, str], ylabel: str, path: Path) -> None:
    figure, ax = plt.subplots(figsize=(8, 5))
    draw_curves(ax, histories, keys, ylabel)
    figure.tight_layout()
    files.save_figure(path, figure)
    plt.close(figure)


def picture_grid(pictures: list[tuple["torch.Tensor", str]], title: str, path: Path, columns: int = 8) -> None:
    """uint8 28 x 28 pictures, light on black as a model sees them, each under its title."""
    columns = min(columns, len(pictures))
    rows = (len(pictures) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, caption) in zip(axes.flat, pictures):
        ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    files.save_figure(path, figure)
    plt.close(figure)
