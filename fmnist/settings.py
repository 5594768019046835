"""The typed settings train and evaluate read: configure's JSON files, and nothing else.

configure validates params.yaml and merges the globals into each model's section (fmnist.config,
where every setting's default, check and doc is declared once). Those checks and messages live
there, not here, so editing one reruns configure alone: its JSON comes out identical and DVC skips
everything downstream.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fmnist.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    crop: int  # pixels of padding for a random crop; 0 = off
    flip: bool | str  # False, True (a random half of each batch) or "alternate" (see augment.augment)
    erase: float  # probability of random erasing per image


@dataclass(frozen=True)
class Settings:
    """What both stages read about a model."""

    name: str
    arch: str
    seed: int
    device: str
    precision: str
    eval_batch_size: int
    # The globals set under this model's own key, so a message names the key as params.yaml has it.
    overridden: tuple[str, ...]

    def key(self, name: str) -> str:
        """Where `name` was written in params.yaml: under this model, or as the global."""
        return f"models.{self.name}.{name}" if name in self.overridden else name

    def refuse(self, name: str, problem: str) -> ConfigError:
        """The one-line error for a value this machine or this data cannot use."""
        return ConfigError(f"params.yaml: {self.key(name)} = {show(getattr(self, name))}: {problem}")

    @classmethod
    def read(cls, path: Path):
        rerun = f"run: python -m stages.configure {Path(path).parent.name}"
        try:
            written = json.loads(Path(path).read_text())
            written["overridden"] = tuple(written["overridden"])
            if cls is Training:
                written["augment"] = Augment(**written["augment"])
            return cls(**written)
        except FileNotFoundError:
            raise ConfigError(f"{path}: missing ({rerun})") from None
        except (OSError, ValueError, KeyError, TypeError):  # damaged, or written by older code
            raise ConfigError(f"{path}: unreadable or out of date with the code ({rerun})") from None


@dataclass(frozen=True)
class Training(Settings):
    """Everything that can change a model's trained weights: train@<model> depends on exactly this."""

    options: dict[str, Any]
    batch_size: int
    epochs: int
    train_subset: int
    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    scheduler: str
    warmup: float
    warmup_from: float
    decay_to: float
    bias_lr_factor: float
    decay_all: bool
    label_smoothing: float
    lookahead: bool
    whiten_bias_epochs: int
    compile: bool
    nproc: int
    augment: Augment

    def fingerprint(self) -> str:
        """A short hash of the settings, so a resume point from other settings is never used."""
        settings = asdict(self)
        del settings["overridden"]
        return fingerprint(settings)


@dataclass(frozen=True)
class Evaluation(Settings):
    """What evaluate@<model> reads besides the weights."""

    tta_views: int
    params_hash: str  # of training and evaluation settings together, recorded in provenance


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list, dict)) else str(value)


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def read_current(cls: type, path: Path, name: str):
    """The settings in `path`; a plain-Python run also refuses them if params.yaml has changed since.

    Under DVC (which sets DVC_STAGE) configure has already rerun whenever the params it reads
    changed, so params.yaml is not read, and fmnist.config is not a dependency of train or evaluate.
    """
    if "DVC_STAGE" not in os.environ:
        from fmnist import config  # plain-Python runs only

        config.check_current(path, name)
    return cls.read(path)
