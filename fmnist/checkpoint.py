"""Model checkpoints: best weights plus what rebuilds the model, loadable with weights_only=True."""

from pathlib import Path

import torch
from torch import nn

from fmnist import io, models
from fmnist.errors import DataError


def save(path: Path, model_state: dict, arch: str, options: dict, mean: float, std: float, best_epoch: int,
         best_val_accuracy: float, nondeterministic: list[str]) -> None:
    """`nondeterministic`: operations training ran without a deterministic kernel (device.nondeterministic_ops)."""
    io.save_torch(path, {
        "arch": arch,
        "options": options,
        "normalization": {"mean": mean, "std": std},
        "best_epoch": best_epoch,
        "best_val_accuracy": best_val_accuracy,
        "nondeterministic": nondeterministic,
        "state_dict": model_state,
    })


def load(path: Path) -> tuple[nn.Module, dict]:
    """The rebuilt model (weights loaded, on the CPU) and the checkpoint's other fields."""
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the train stage first") from None
    except Exception as error:  # torch.load raises many types for a damaged file
        raise DataError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    model = models.build(saved["arch"], saved["options"])
    model.load_state_dict(saved.pop("state_dict"))
    return model, saved
