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
    machine: str,
) -> None:
    """`nondeterministic`: operations training ran without a deterministic kernel (determinism.nondeterministic_ops);
    `machine`: the kind of machine and precision that trained it (device.machine), which DVC's
    run-cache does not key on, so a restored model still says where it was made."""
    files.save_torch(
        path,
        {
            "arch": arch,
            "options": options,
            "best_epoch": best_epoch,
            "best_val_accuracy": best_val_accuracy,
            "nondeterministic": nondeterministic,
            "machine": machine,
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
    if not isinstance(saved, dict):
        raise DataError(f"{path}: not a checkpoint this code can load (a {type(saved).__name__}, not a dict)")
    try:
        model = models.build(saved["arch"], saved["options"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        # torch's misfit message opens with a line naming only the class; the next names the keys.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        why = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
        raise DataError(f"{path}: not a checkpoint this code can load ({why[:160]})") from None
    return model, saved
