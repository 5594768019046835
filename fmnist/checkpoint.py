"""Model checkpoints: best weights plus what rebuilds the model, loadable with weights_only=True."""

from pathlib import Path

import torch
from torch import nn

from fmnist import files, models
from fmnist.errors import DataError

FIELDS = ("arch", "options", "normalization", "best_epoch", "best_val_accuracy", "state_dict")  # what save writes


def save(path: Path, model_state: dict, arch: str, options: dict, mean: float, std: float, best_epoch: int,
         best_val_accuracy: float, nondeterministic: list[str]) -> None:
    """`nondeterministic`: operations training ran without a deterministic kernel (device.nondeterministic_ops)."""
    files.save_torch(path, {
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
    if why := _not_ours(saved):
        raise DataError(f"{path}: not a checkpoint of this project ({why})")
    arch, options, state = saved["arch"], saved["options"], saved.pop("state_dict")
    try:
        model = models.build(arch, options)
    except (TypeError, ValueError, RuntimeError) as error:  # options the builder does not take
        raise DataError(f"{path}: not a checkpoint of this project (options that build no {arch}: "
                        f"{_first_line(error)})") from None
    if why := _misfit(model.state_dict(), state):
        with_options = f" with {', '.join(f'{k}={v}' for k, v in options.items())}" if options else ""
        raise DataError(f"{path}: weights do not fit the {arch}{with_options} ({why})")
    model.load_state_dict(state)
    return model, saved


def _not_ours(saved: object) -> str | None:
    """Why `saved` is not what `save` writes, as far as loading and using it go; None if it is."""
    if not isinstance(saved, dict):
        return f"a {type(saved).__name__}, not a dict"
    if missing := [field for field in FIELDS if field not in saved]:
        return f"no {', '.join(missing)}"
    if not isinstance(saved["arch"], str) or saved["arch"] not in models.ARCHITECTURES:
        return f"unknown arch {saved['arch']!r}"
    if not all(isinstance(saved[field], dict) for field in ("options", "normalization", "state_dict")):
        return "options, normalization and state_dict must be dicts"
    if not {"mean", "std"} <= saved["normalization"].keys():
        return "normalization without mean and std"
    return None


def _misfit(expected: dict, state: dict) -> str | None:
    """The first way the file's tensors differ from the model's, in names or shapes; None if they do not."""
    if wrong := [key for key in expected if key in state and _shape(state[key]) != _shape(expected[key])]:
        key = wrong[0]
        return f"{key} is {_shape(state[key])} in the file, {_shape(expected[key])} in the model" + _more(wrong)
    if missing := [key for key in expected if key not in state]:
        return f"no {missing[0]}" + _more(missing)
    if unexpected := [key for key in state if key not in expected]:
        return f"unexpected {unexpected[0]}" + _more(unexpected)
    return None


def _shape(value: object) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _more(keys: list) -> str:
    return f", and {len(keys) - 1} more" if len(keys) > 1 else ""


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
