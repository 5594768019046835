"""Every setting of params.yaml, declared once: its type, bounds and default, and a one-line doc.

The stages read these dataclasses from the JSON files configure writes. configure checks
params.yaml against the same declarations with pydantic (fmnist.params), which also writes the
JSON Schema and params.yaml's comment block from them.
"""

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from fmnist.core.errors import ConfigError

try:
    from pydantic import Field
except ModuleNotFoundError:  # a GPU image without it runs the stages after configure (docs/gpu.md)

    def Field(**_) -> None:
        return None


CHECKED = {"extra": "forbid", "allow_inf_nan": False}  # pydantic's config for every settings class


def setting(kind: Any, doc: str, **check: Any) -> Any:
    """A setting's type, with its doc and bounds as pydantic reads them. Strict: "1" is not 1, 2.5 is
    not an integer, 1 is not true (pydantic's Literal takes 1 for true: fmnist.params checks those)."""
    strict = {} if get_origin(kind) is Literal else {"strict": True}
    return Annotated[kind, Field(description=doc, **strict, **check)]


Widths = Annotated[list[Annotated[int, Field(strict=True, ge=1, le=16384)]], Field(min_length=1)]
DEVICE_DOC = "auto | cpu | cuda | cuda:N (auto = a CUDA GPU when present, else the CPU)"


@dataclass(frozen=True, kw_only=True)
class Augment:
    """models.<name>.augment: batched augmentation of the training images (fmnist.train.augment)."""

    __pydantic_config__ = CHECKED
    crop: setting(int, "random shift by up to this many pixels, black fill", ge=0, le=14) = 0
    flip: setting(
        Literal[True, False, "alternate"],
        "true = a random half of each batch | alternate = each image both ways every two epochs",
    ) = False
    erase: setting(float, "probability of random erasing", ge=0, le=1) = 0.0
    brightness: setting(float, "each image's pixels (0-1) shifted by one random amount up to +- this", ge=0, le=1) = 0.0
    contrast: setting(float, "then scaled about the training mean by a random 1 +- up to this", ge=0, le=1) = 0.0


# The architectures' own keys, under models.<name>: models.build(arch, options) receives them.
@dataclass(frozen=True, kw_only=True)
class LogregOptions:
    __pydantic_config__ = CHECKED


@dataclass(frozen=True, kw_only=True)
class MlpOptions:
    __pydantic_config__ = CHECKED
    hidden: setting(Widths, "hidden layer widths") = field(default_factory=lambda: [256, 128, 64])
    dropout: setting(float, "after each hidden layer", ge=0, lt=1) = 0.0


@dataclass(frozen=True, kw_only=True)
class CnnOptions:
    __pydantic_config__ = CHECKED
    channels: setting(Widths, "a conv group each: 27 -> 13 -> 6 -> 3 px") = field(default_factory=lambda: [48, 96, 128])
    whiten: setting(bool, "frozen 2x2 patch-whitening stem (false: a trainable conv of that shape)") = True
    dirac: setting(bool, "every 3x3 conv starts as the identity on its first input-width filters") = True
    bn_scale: setting(bool, "batch norm's scale trains (false: frozen at 1)") = False
    logit_scale: setting(float, "logits are multiplied by it", gt=0, le=100) = 1 / 9
    residual: setting(bool, "airbench96's group: a third conv, and the last two added to the first's output") = False


@dataclass(frozen=True, kw_only=True)
class Resnet18Options:
    __pydantic_config__ = CHECKED
    downsample: setting(
        Literal[1, 2, 4], "stem: 1 = 28x28 maps, 2 = max-pool, 4 = strided conv + max-pool (4x less compute a step)"
    ) = 1
    whiten: setting(bool, "the cnn's frozen 2x2 patch-whitening layer and a GELU before the stem") = False


ARCH_OPTIONS = {"logreg": LogregOptions, "mlp": MlpOptions, "cnn": CnnOptions, "resnet18": Resnet18Options}


@dataclass(frozen=True, kw_only=True)
class Globals:
    """The top of params.yaml, for every model; a model may set its own under its key."""

    __pydantic_config__ = CHECKED
    seed: setting(int, "splitting, init, shuffling and augmentation all derive from it", ge=0, le=2**32 - 1) = 0
    device: setting(str, DEVICE_DOC, pattern=r"^(auto|cpu|cuda(:\d+)?)$", title="auto, cpu, cuda or cuda:N") = "auto"
    precision: setting(
        Literal["auto", "fp32", "bf16", "fp16"], "auto = bf16 on CUDA and on CPUs with native bf16, else fp32"
    ) = "auto"
    batch_size: setting(int, "training batch", ge=1, le=65536) = 256
    eval_batch_size: setting(int, "validation and test batches (no gradients, so larger)", ge=1, le=65536) = 1024
    epochs: setting(int, "passes over the training split", ge=1, le=10000) = 10
    train_subset: setting(int, "0 = all training images; N = a stratified N-image subset", ge=0) = 0
    compile: setting(bool, "torch.compile the model for training (docs/benchmarks.md: when it pays)") = False
    nproc: setting(int, "processes that train one model together (torchrun, DDP)", ge=1, le=1024) = 1


GLOBALS = [f.name for f in fields(Globals)]


@dataclass(frozen=True, kw_only=True)
class Recipe(Globals):
    """One model's settings with the globals merged in: everything that can change its trained weights.

    train@<model> reads exactly this (configs/<model>/train.json); evaluate reads it too.
    """

    name: str  # the key under models:, not a setting
    arch: setting(Literal["logreg", "mlp", "cnn", "resnet18"], " | ".join(ARCH_OPTIONS))
    lr: setting(float, "peak learning rate", gt=0, le=10)
    options: dict = field(default_factory=dict)  # the arch's own keys (ARCH_OPTIONS), defaults filled in
    augment: Augment = field(default_factory=Augment)
    optimizer: setting(
        Literal["sgd", "adam", "adamw", "muon"], "sgd | adam | adamw | muon = Muon on conv filters, sgd on the rest"
    ) = "adamw"
    momentum: setting(float, "sgd and muon's sgd part", ge=0, lt=1) = 0.9
    nesterov: setting(bool, "sgd only (muon's sgd part is always Nesterov)") = True
    muon_lr: setting(float, "muon: the conv filters' peak learning rate", gt=0, le=10) = 0.24
    muon_momentum: setting(float, "muon: the conv filters' Nesterov momentum", ge=0, lt=1) = 0.6
    weight_decay: setting(float, "decoupled for adamw, L2 for sgd and adam", ge=0, le=1) = 0.0
    scheduler: setting(
        Literal["onecycle", "cosine", "constant"], "after warm-up: onecycle = linear decay | cosine | constant"
    ) = "cosine"
    warmup: setting(float, "fraction of the steps spent in linear warm-up", ge=0, le=1) = 0.0
    warmup_from: setting(float, "the lr factor warm-up starts from", ge=0, le=1) = 0.0
    decay_to: setting(float, "the lr factor the decay ends at", ge=0, le=1) = 0.0
    bias_lr_factor: setting(float, "batch norm's parameters learn this many times faster", gt=0, le=1000) = 1.0
    decay_all: setting(bool, "weight decay on biases and norms too, at the weights' absolute rate") = False
    label_smoothing: setting(float, "of the training loss", ge=0, lt=1) = 0.0
    lookahead: setting(bool, "airbench's: every 5 steps, weights <- a slow average of them") = False
    whiten_bias_epochs: setting(int, "cnn: epochs the whitening stem's bias trains, then frozen", ge=0, le=10000) = 3

    @classmethod
    def read(cls, path: Path) -> "Recipe":
        return read_json(path, lambda written: cls(**{**written, "augment": Augment(**written["augment"])}))

    def key(self, name: str) -> str:
        """How an error names setting `name`: the model's own key, or a global as this model has it."""
        return f"{name} (models.{self.name})" if name in GLOBALS else f"models.{self.name}.{name}"

    def refuse(self, name: str, problem: str) -> ConfigError:
        """The one-line error for a value this machine or this data cannot use."""
        return ConfigError(f"params.yaml: {self.key(name)} = {show(getattr(self, name))}: {problem}")

    def changes(self) -> dict[str, Any]:
        """The settings that differ from their declared defaults, as dotted keys under the model.

        A new setting at its default changes nothing here, so what is keyed on this (logged
        trials, resume points) stays valid when one is added.
        """
        options = asdict(ARCH_OPTIONS[self.arch]())
        defaults = flat(asdict(type(self)(name=self.name, arch=self.arch, lr=self.lr, options=options)))
        changed = {key: value for key, value in flat(asdict(self)).items() if defaults.get(key, MISSING) != value}
        return {"arch": self.arch, "lr": self.lr} | changed  # required: no default to differ from

    def fingerprint(self) -> str:
        return digest(self.changes())


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """What evaluation reads besides the recipe (configs/<model>/evaluate.json): changing it retrains nothing."""

    __pydantic_config__ = CHECKED
    tta_views: setting(
        Literal[1, 2, 6], "test-time views averaged: 1 | 2 = with the mirror image | 6 = both, also shifted 1 px"
    ) = 1

    @classmethod
    def read(cls, path: Path) -> "Evaluation":
        return read_json(path, lambda written: cls(**written))


@dataclass(frozen=True, kw_only=True)
class ParamsFile(Globals):
    """params.yaml's top level: the globals, how the data is split, and the models (fmnist.params)."""

    val_size: setting(
        int, "validation images held out (stratified) of the 60k; 0 = none: train on all, keep the last epoch", ge=0
    ) = 10000
    models: setting(dict, "one entry per model: its arch, lr and any other key below", min_length=1)


@dataclass(frozen=True, kw_only=True)
class Data:
    """How the dataset is split (configs/data.json): prepare reads this."""

    seed: int
    val_size: int

    @classmethod
    def read(cls, path: Path) -> "Data":
        return read_json(path, lambda written: cls(**written))


def read_json(path: Path, build: Any) -> Any:
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
    shown = json.dumps(value, default=str) if isinstance(value, (str, list, dict, bool)) else str(value)
    return shown if len(shown) <= most else shown[: most - 3] + "..."
