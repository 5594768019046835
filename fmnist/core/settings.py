"""Every setting of params.yaml, declared once: its default, what values it allows, a one-line doc, its scope.

The dataclasses below are what the stages read, from the JSON files configure writes. fmnist.params
reads params.yaml against these declarations (its checks and messages live there, so editing one
reruns configure alone); the JSON Schema and params.yaml's comment block are generated from them.
"""

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fmnist.core.errors import ConfigError

# Where a setting is written in params.yaml.
GLOBAL = "global"  # at the top, for every model; a model may override it under its own key
DATA = "data"  # at the top only: how the dataset is split
MODEL = "model"  # under models.<name>
EVAL = "eval"  # under models.<name>, read by evaluation alone: changing it retrains nothing


# What values a setting allows: plain data, which fmnist.params turns into checks and schema.
@dataclass(frozen=True)
class Int:
    low: int
    high: float = math.inf


@dataclass(frozen=True)
class Real:
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False


@dataclass(frozen=True)
class OneOf:
    options: tuple


@dataclass(frozen=True)
class Widths:
    """A non-empty list of layer widths."""

    most: int = 16384  # a layer wider than this would not fit a model of this size in memory


@dataclass(frozen=True)
class Device:
    pattern: str = r"auto|cpu|cuda(:\d+)?"


BOOL = OneOf((True, False))
REQUIRED = MISSING


def setting(default: Any, allowed: Any, doc: str, scope: str = MODEL) -> Any:
    """A dataclass field that is a setting: params.yaml's key is the field's name."""
    meta = {"allowed": allowed, "doc": doc, "scope": scope}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Augment:
    """models.<name>.augment: batched augmentation of the training images (fmnist.train.augment)."""

    crop: int = setting(0, Int(0, 14), "random shift by up to this many pixels, black fill")
    flip: bool | str = setting(
        False,
        OneOf((True, False, "alternate")),
        "true = a random half of each batch | alternate = each image both ways every two epochs",
    )
    erase: float = setting(0.0, Real(0, 1), "probability of random erasing")
    brightness: float = setting(
        0.0, Real(0, 1), "each image's pixels (0-1) all shifted by one random amount, up to +- this"
    )
    contrast: float = setting(
        0.0, Real(0, 1), "each image then scaled about the training mean by a random 1 +- up to this"
    )


# The architectures' own keys, under models.<name>: models.build(arch, options) receives them.
@dataclass(frozen=True)
class LogregOptions:
    pass


@dataclass(frozen=True)
class MlpOptions:
    hidden: list = setting([256, 128, 64], Widths(), "hidden layer widths")
    dropout: float = setting(0.0, Real(0, 1, high_open=True), "after each hidden layer")


@dataclass(frozen=True)
class CnnOptions:
    channels: list = setting([48, 96, 128], Widths(), "one conv group each: 27 -> 13 -> 6 -> 3 pixels")
    whiten: bool = setting(True, BOOL, "frozen 2x2 patch-whitening stem (false: a trainable conv of that shape)")
    dirac: bool = setting(True, BOOL, "every 3x3 conv starts as the identity on its first input-width filters")
    bn_scale: bool = setting(False, BOOL, "batch norm's scale trains (false: frozen at 1)")
    logit_scale: float = setting(1 / 9, Real(0, 100, low_open=True), "logits are multiplied by it")


@dataclass(frozen=True)
class Resnet18Options:
    downsample: int = setting(
        1,
        OneOf((1, 2, 4)),
        "stem: 1 = 28x28 maps, 2 = max-pool, 4 = strided conv + max-pool (each step 4x less compute)",
    )
    whiten: bool = setting(False, BOOL, "the cnn's frozen 2x2 patch-whitening layer and a GELU before the stem")


ARCH_OPTIONS = {"logreg": LogregOptions, "mlp": MlpOptions, "cnn": CnnOptions, "resnet18": Resnet18Options}


@dataclass(frozen=True)
class Recipe:
    """One model's settings with the globals merged in: everything that can change its trained weights.

    train@<model> reads exactly this (configs/<model>/train.json); evaluate reads it too.
    """

    name: str  # the key under models:, not a setting
    arch: str = setting(REQUIRED, OneOf(tuple(ARCH_OPTIONS)), " | ".join(ARCH_OPTIONS))
    lr: float = setting(REQUIRED, Real(0, 10, low_open=True), "peak learning rate")
    options: dict = field(default_factory=dict)  # the arch's own keys (ARCH_OPTIONS), defaults filled in
    augment: Augment = field(default_factory=Augment)
    seed: int = setting(
        0, Int(0, 2**32 - 1), "splitting, initialisation, shuffling and augmentation all derive from it", GLOBAL
    )
    device: str = setting(
        "auto", Device(), "auto | cpu | cuda | cuda:N (auto = a CUDA GPU when present, else the CPU)", GLOBAL
    )
    precision: str = setting(
        "auto",
        OneOf(("auto", "fp32", "bf16", "fp16")),
        "auto = bf16 on CUDA and on CPUs with native bf16, else fp32",
        GLOBAL,
    )
    batch_size: int = setting(256, Int(1, 65536), "training batch", GLOBAL)
    eval_batch_size: int = setting(1024, Int(1, 65536), "validation and test batches (no gradients, so larger)", GLOBAL)
    epochs: int = setting(10, Int(1, 10000), "passes over the training split", GLOBAL)
    train_subset: int = setting(0, Int(0), "0 = all training images; N = a stratified N-image subset", GLOBAL)
    compile: bool = setting(
        False, BOOL, "torch.compile the model for training (docs/benchmarks.md: whether it pays on your CPU)", GLOBAL
    )
    nproc: int = setting(1, Int(1, 1024), "processes that train one model together (torchrun, DDP)", GLOBAL)
    optimizer: str = setting(
        "adamw",
        OneOf(("sgd", "adam", "adamw", "muon")),
        "sgd | adam | adamw | muon = Muon on conv filters, sgd on the rest",
    )
    momentum: float = setting(0.9, Real(0, 1, high_open=True), "sgd and muon's sgd part")
    nesterov: bool = setting(True, BOOL, "sgd only (muon's sgd part is always Nesterov)")
    muon_lr: float = setting(0.24, Real(0, 10, low_open=True), "muon: the conv filters' peak learning rate")
    muon_momentum: float = setting(0.6, Real(0, 1, high_open=True), "muon: the conv filters' Nesterov momentum")
    weight_decay: float = setting(0.0, Real(0, 1), "decoupled for adamw, L2 for sgd and adam")
    scheduler: str = setting(
        "cosine",
        OneOf(("onecycle", "cosine", "constant")),
        "after warm-up: onecycle = linear decay | cosine | constant",
    )
    warmup: float = setting(0.0, Real(0, 1), "fraction of the steps spent in linear warm-up")
    warmup_from: float = setting(0.0, Real(0, 1), "the lr factor warm-up starts from")
    decay_to: float = setting(0.0, Real(0, 1), "the lr factor the decay ends at")
    bias_lr_factor: float = setting(
        1.0, Real(0, 1000, low_open=True), "batch norm's parameters learn this many times faster"
    )
    decay_all: bool = setting(False, BOOL, "weight decay on biases and norms too, at the weights' absolute rate")
    label_smoothing: float = setting(0.0, Real(0, 1, high_open=True), "of the training loss")
    lookahead: bool = setting(False, BOOL, "airbench's: every 5 steps, weights <- a slow average of them")
    whiten_bias_epochs: int = setting(
        3, Int(0, 10000), "cnn: epochs the whitening stem's bias trains, then it is frozen"
    )

    @classmethod
    def read(cls, path: Path) -> "Recipe":
        return read_json(path, lambda written: cls(**{**written, "augment": Augment(**written["augment"])}))

    def key(self, name: str, params: Path = Path("params.yaml")) -> str:
        """`name` as params.yaml spells it for this model: under the model, or as the global.

        Read only to word an error, so it never changes what a stage computes.
        """
        try:
            written = name in yaml.safe_load(params.read_text())["models"][self.name]
        except Exception:  # no params.yaml (a copied configs/), or not the file configure read
            written = False
        return f"models.{self.name}.{name}" if written else name

    def refuse(self, name: str, problem: str) -> ConfigError:
        """The one-line error for a value this machine or this data cannot use."""
        return ConfigError(f"params.yaml: {self.key(name)} = {show(getattr(self, name))}: {problem}")

    def changes(self) -> dict[str, Any]:
        """The settings that differ from their declared defaults, as dotted keys under the model.

        A new setting at its default changes nothing here, so what is keyed on this (logged
        trials, resume points) stays valid when one is added.
        """
        defaults = flat(asdict(type(self)(self.name, self.arch, self.lr, options=asdict(ARCH_OPTIONS[self.arch]()))))
        changed = {key: value for key, value in flat(asdict(self)).items() if defaults.get(key, MISSING) != value}
        return {"arch": self.arch, "lr": self.lr} | changed  # required: no default to differ from

    def fingerprint(self) -> str:
        return digest(self.changes())


@dataclass(frozen=True)
class Evaluation:
    """What evaluation reads besides the recipe (configs/<model>/evaluate.json): changing it retrains nothing."""

    tta_views: int = setting(
        1,
        OneOf((1, 2, 6)),
        "test-time views averaged: 1 | 2 = with the mirror image | 6 = both, also shifted 1 px",
        EVAL,
    )

    @classmethod
    def read(cls, path: Path) -> "Evaluation":
        return read_json(path, lambda written: cls(**written))


@dataclass(frozen=True)
class Data:
    """How the dataset is split (configs/data.json): prepare reads this."""

    seed: int
    val_size: int = setting(
        10000, Int(1), "validation images taken (stratified) from the official 60k training set", DATA
    )

    @classmethod
    def read(cls, path: Path) -> "Data":
        return read_json(path, lambda written: cls(**written))


def declared(cls: type, scope: str | None = None) -> list:
    """The setting fields of a settings dataclass, in declaration order (of one scope, if given)."""
    return [f for f in fields(cls) if "scope" in f.metadata and scope in (None, f.metadata["scope"])]


def default(f) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def read_json(path: Path, build: Callable[[dict], Any]) -> Any:
    """`build` applied to configure's JSON file; one line, naming the fix, if it is missing or from older code."""
    rerun = "run: python -m stages.configure"
    try:
        return build(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing ({rerun})") from None
    except (OSError, ValueError, KeyError, TypeError) as error:  # damaged, or written by older code
        raise ConfigError(f"{path}: unreadable or out of date ({type(error).__name__}; {rerun})") from None


def flat(settings: dict, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys; the arch's options sit directly under the model, as in params.yaml."""
    out = {}
    for key, value in settings.items():
        if key == "name":
            continue
        if isinstance(value, dict) and value and key in ("options", "augment"):
            out |= flat(value, "" if key == "options" else f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def show(value: Any, most: int = 60) -> str:
    """A value as an error message quotes it: JSON-like, and cut short, however large it is."""
    shown = json.dumps(value) if isinstance(value, (str, list, dict)) else str(value)
    return shown if len(shown) <= most else shown[: most - 3] + "..."
