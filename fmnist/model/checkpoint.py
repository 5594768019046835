"""Model checkpoints: best weights (normalisation included) and what rebuilds the model; weights_only loads them."""

from pathlib import Path

import torch
from torch import nn

from fmnist.core import files
from fmnist.core.errors import DataError
from fmnist.model import models


def save(
    path: Path,
    state_dict: dict,
    arch: str,
    options: dict,
    best_epoch: int,
    best_val_accuracy: float,
    nondeterministic: list[str],
) -> None:
    """`nondeterministic`: operations training ran without a deterministic kernel (device.nondeterministic_ops)."""
    files.save_torch(
        path,
        {
            "arch": arch,
            "options": options,
            "best_epoch": best_epoch,
            "best_val_accuracy": best_val_accuracy,
            "nondeterministic": nondeterministic,
            "state_dict": state_dict,
        },
    )


def load(path: Path) -> tuple[nn.Module, dict]:
    """The rebuilt model (weights loaded, on the CPU) and the checkpoint's other fields.

    A file this project did not write, or one that no longer fits the code, is one line naming why.
    """
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the train stage first") from None
    except Exception as error:  # torch.load raises many types for a damaged file
        raise DataError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    try:
        model = models.build(saved["arch"], saved["options"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a checkpoint this code can load ({why[:200]})") from None
    return model, saved
