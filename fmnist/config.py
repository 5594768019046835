"""params.yaml into settings: each setting declared once (default, check, doc), every message here.

Imported by configure, prepare and summarize, which DVC reruns on a params change; train and
evaluate read the settings configure wrote (fmnist.settings), so an edit here retrains nothing.
"""

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from fmnist import settings
from fmnist.errors import ConfigError

REQUIRED = object()
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a file name and a stage argument, never an option


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {settings.show(value)}: {allowed}")


# Checks: each refuses a bad value with the key and what is allowed, and describes itself as JSON Schema.
@dataclass(frozen=True)
class Integer:
    low: int
    high: float = math.inf

    def __call__(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            bound = f">= {self.low}" if self.high == math.inf else f"in [{self.low}, {self.high}]"
            raise _fail(key, value, f"must be an integer {bound}")
        return value

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.low, **({"maximum": self.high} if self.high < math.inf else {})}


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __call__(self, key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > self.low if self.low_open else value >= self.low)
        ok = ok and (value < self.high if self.high_open else value <= self.high)
        if not ok:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            raise _fail(key, value, f"must be a number in {left}{self.low}, {self.high}{right}")
        return float(value)

    def schema(self) -> dict:
        low = "exclusiveMinimum" if self.low_open else "minimum"
        high = "exclusiveMaximum" if self.high_open else "maximum"
        return {"type": "number", low: self.low, high: self.high}


@dataclass(frozen=True)
class Choice:
    options: tuple

    def __call__(self, key: str, value: Any):
        if isinstance(value, bool) or value not in self.options:
            raise _fail(key, value, f"must be one of {', '.join(map(str, self.options))}")
        return value

    def schema(self) -> dict:
        return {"enum": list(self.options)}


@dataclass(frozen=True)
class Boolean:
    def __call__(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _fail(key, value, "must be true or false")
        return value

    def schema(self) -> dict:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Flip:
    def __call__(self, key: str, value: Any) -> bool | str:
        if not (isinstance(value, bool) or value == "alternate"):
            raise _fail(key, value, "must be true, false or alternate")
        return value

    def schema(self) -> dict:
        return {"enum": [True, False, "alternate"]}


@dataclass(frozen=True)
class Device:
    pattern = re.compile(r"auto|cpu|cuda(:\d+)?")

    def __call__(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise _fail(key, value, "must be auto, cpu, cuda or cuda:N")
        return value

    def schema(self) -> dict:
        return {"type": "string", "pattern": f"^({self.pattern.pattern})$"}


@dataclass(frozen=True)
class Widths:
    most: int = 16384  # a layer wider than this would not fit a model of this size in memory

    def __call__(self, key: str, value: Any) -> list[int]:
        if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= self.most for v in value
        ):
            raise _fail(key, value, f"must be a non-empty list of integers in [1, {self.most}]")
        return value

    def schema(self) -> dict:
        return {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": self.most}, "minItems": 1}


@dataclass(frozen=True)
class Setting:
    default: Any  # REQUIRED: the key must be present
    check: Any
    doc: str


# Globals: top-level keys that every model may override under its own key.
GLOBALS = {
    "seed": Setting(0, Integer(0, 2**32 - 1), "splitting, initialisation, shuffling and augmentation all derive from it"),
    "device": Setting("auto", Device(), "auto | cpu | cuda | cuda:N (auto = a CUDA GPU when present, else the CPU)"),
    "precision": Setting("auto", Choice(("auto", "fp32", "bf16", "fp16")),
                         "auto = bf16 on CUDA and on CPUs with native bf16, else fp32"),
    "batch_size": Setting(256, Integer(1, 65536), "training batch"),
    "eval_batch_size": Setting(1024, Integer(1, 65536), "validation and test batches (no gradients, so larger)"),
    "epochs": Setting(10, Integer(1, 10000), "passes over the training split"),
    "train_subset": Setting(0, Integer(0), "0 = all training images; N = a stratified N-image subset"),
    "compile": Setting(False, Boolean(), "torch.compile the model (pays off on CUDA for the larger models)"),
    "nproc": Setting(1, Integer(1, 1024), "processes that train one model together (torchrun, DDP)"),
}
# Top-level keys that are not per model.
DATA = {
    "val_size": Setting(10000, Integer(1), "validation images taken (stratified) from the official 60k training set"),
}
# A model's own keys.
MODEL = {
    "arch": Setting(REQUIRED, Choice(("logreg", "mlp", "cnn", "resnet18")), "logreg | mlp | cnn | resnet18"),
    "lr": Setting(REQUIRED, Number(0, 10, low_open=True), "peak learning rate"),
    "optimizer": Setting("adamw", Choice(("sgd", "adam", "adamw")), "sgd | adam | adamw"),
    "momentum": Setting(0.9, Number(0, 1, high_open=True), "sgd only"),
    "nesterov": Setting(True, Boolean(), "sgd only"),
    "weight_decay": Setting(0.0, Number(0, 1), "decoupled for adamw, L2 for sgd and adam"),
    "scheduler": Setting("cosine", Choice(("onecycle", "cosine", "constant")),
                         "after warm-up: onecycle = linear decay | cosine | constant"),
    "warmup": Setting(0.0, Number(0, 1), "fraction of the steps spent in linear warm-up"),
    "warmup_from": Setting(0.0, Number(0, 1), "the lr factor warm-up starts from"),
    "decay_to": Setting(0.0, Number(0, 1), "the lr factor the decay ends at"),
    "bias_lr_factor": Setting(1.0, Number(0, 1000, low_open=True), "batch norm's parameters learn this many times faster"),
    "decay_all": Setting(False, Boolean(), "weight decay on biases and norms too, at the weights' absolute rate"),
    "label_smoothing": Setting(0.0, Number(0, 1, high_open=True), "of the training loss"),
    "lookahead": Setting(False, Boolean(), "airbench's: every 5 steps, weights <- a slow average of them"),
    "whiten_bias_epochs": Setting(3, Integer(0, 10000), "cnn: epochs the whitening stem's bias trains, then it is frozen"),
    "tta_views": Setting(1, Choice((1, 2, 6)),
                         "test-time views averaged: 1 | 2 = with the mirror image | 6 = both, also shifted 1 px"),
}
AUGMENT = {
    "crop": Setting(0, Integer(0, 14), "random shift by up to this many pixels, black fill"),
    "flip": Setting(False, Flip(), "true = a random half of each batch | alternate = each image both ways every two epochs"),
    "erase": Setting(0.0, Number(0, 1), "probability of random erasing"),
}
# The architectures' own keys: models.build(arch, options) receives them.
ARCH_OPTIONS = {
    "logreg": {},
    "mlp": {
        "hidden": Setting([256, 128, 64], Widths(), "hidden layer widths"),
        "dropout": Setting(0.0, Number(0, 1, high_open=True), "after each hidden layer"),
    },
    "cnn": {
        "channels": Setting([48, 96, 128], Widths(), "one conv group each: 27 -> 13 -> 6 -> 3 pixels"),
        "whiten": Setting(True, Boolean(), "frozen 2x2 patch-whitening stem (false: a trainable conv of that shape)"),
        "dirac": Setting(True, Boolean(), "every 3x3 conv starts as the identity on its first input-width filters"),
        "bn_scale": Setting(False, Boolean(), "batch norm's scale trains (false: frozen at 1)"),
        "logit_scale": Setting(1 / 9, Number(0, 100, low_open=True), "logits are multiplied by it"),
    },
    "resnet18": {
        "downsample": Setting(1, Choice((1, 2, 4)), "stem: 1 = 28x28 maps, 2 = max-pool, "
                              "4 = strided conv + max-pool (each step 4x less compute)"),
        "whiten": Setting(False, Boolean(), "the cnn's frozen 2x2 patch-whitening layer and a GELU before the stem"),
    },
}


@dataclass(frozen=True)
class Model:
    training: settings.Training
    evaluation: settings.Evaluation


@dataclass(frozen=True)
class Params:
    seed: int
    val_size: int
    models: dict[str, Model]


class Section:
    """One mapping of params.yaml: take keys with their checks, then refuse whatever is left over."""

    def __init__(self, values: Any, where: str):
        self.mapping, self.where, self.known = mapping(where, values), where, set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def take(self, name: str, setting: Setting, default: Any = None) -> Any:
        """The checked value, or `default` (else the declared default) when absent."""
        self.known.add(name)
        default = setting.default if default is None else default
        if name in self.mapping:
            return setting.check(self.key(name), self.mapping[name])
        if default is REQUIRED:
            raise ConfigError(f"params.yaml: {self.key(name)}: required key missing ({setting.doc})")
        return default

    def take_all(self, declared: dict[str, Setting]) -> dict[str, Any]:
        return {name: self.take(name, setting) for name, setting in declared.items()}

    def finish(self) -> None:
        unknown = sorted(set(self.mapping) - self.known, key=str)
        if unknown:
            allowed = ", ".join(sorted(self.known))
            raise ConfigError(f"params.yaml: {self.key(str(unknown[0]))}: unknown key (allowed: {allowed})")


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole file: a typo anywhere stops every stage before any work."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse(raw)


def pick(params: Params, name: str) -> Model:
    if name not in params.models:
        raise ConfigError(f"params.yaml: models.{name}: no such model (have: {', '.join(params.models)})")
    return params.models[name]


def parse(raw: Any) -> Params:
    top = Section(raw, "")
    defaults = top.take_all(GLOBALS)
    val_size = top.take("val_size", DATA["val_size"])
    models = top.take("models", Setting(REQUIRED, mapping, "a mapping of model name to settings"))
    top.finish()
    if not models:
        raise ConfigError("params.yaml: models: must name at least one model")
    parsed = {str(name): parse_model(str(name), entry, defaults) for name, entry in models.items()}
    return Params(seed=defaults["seed"], val_size=val_size, models=parsed)


def mapping(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"params.yaml: {key or 'top level'} must be a mapping, got {settings.show(value)}")
    return value


def parse_model(name: str, entry: Any, defaults: dict[str, Any]) -> Model:
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(f"params.yaml: models.{name}: a model name is 1-64 letters, digits, _ and -, "
                          "starting with a letter or digit")
    s = Section(entry, f"models.{name}")
    own = s.take_all(MODEL)
    arch, tta_views = own.pop("arch"), own.pop("tta_views")
    options = s.take_all(ARCH_OPTIONS[arch])
    merged = {key: s.take(key, setting, defaults[key]) for key, setting in GLOBALS.items()}
    augment = Section(s.take("augment", Setting({}, mapping, "")), s.key("augment"))
    own["augment"] = settings.Augment(**augment.take_all(AUGMENT))
    augment.finish()
    s.finish()

    overridden = set(GLOBALS) & set(entry)
    common = {"name": name, "arch": arch}
    common |= {key: merged.pop(key) for key in ("seed", "device", "precision", "eval_batch_size")}
    training = settings.Training(**common, options=options, **own, **merged,
                                 overridden=written_here(overridden, settings.Training))
    if training.batch_size % training.nproc:
        raise training.refuse("batch_size", f"must be a multiple of nproc ({training.nproc})")
    hashed = {**asdict(training), "tta_views": tta_views}
    del hashed["overridden"]
    evaluation = settings.Evaluation(**common, tta_views=tta_views, params_hash=settings.fingerprint(hashed),
                                     overridden=written_here(overridden, settings.Evaluation))
    return Model(training, evaluation)


def written_here(overridden: set[str], kind: type) -> tuple[str, ...]:
    """The overridden globals that `kind` of settings holds: moving another one changes nothing it reads."""
    return tuple(sorted(overridden & set(settings.field_names(kind))))


def check_current(path: Path, name: str) -> None:
    """A plain-Python run's guard: configure's file must match params.yaml as it is now."""
    model = pick(load(), name)
    expected = model.training if Path(path).name == "train.json" else model.evaluation
    if type(expected).read(path) != expected:
        raise ConfigError(f"{path}: out of date with params.yaml (run: python -m stages.configure {name})")
