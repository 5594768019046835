"""params.yaml into frozen dataclasses. Every check and every error message lives here."""

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fmnist.errors import ConfigError

ARCH_OPTIONS: dict[str, dict[str, Any]] = {
    "logreg": {},
    "mlp": {"hidden": [256, 128, 64], "dropout": 0.0},
    "cnn": {"channels": [64, 128, 128], "whiten": True, "dirac": True, "bn_scale": False, "logit_scale": 1 / 9},
    "resnet18": {"downsample": 1},
}
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TTA_VIEWS = (1, 2, 6)  # the image; with its mirror image; both, each also shifted by a pixel both ways
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
REQUIRED = object()


@dataclass(frozen=True)
class Augment:
    crop: int  # pixels of padding for a random crop; 0 = off
    flip: bool | str  # False, True (a random half of each batch) or "alternate" (see data.augment)
    erase: float  # probability of random erasing per image


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines one model's training, globals already merged in."""

    name: str
    arch: str
    options: dict[str, Any]
    seed: int
    device: str
    precision: str
    batch_size: int
    eval_batch_size: int
    epochs: int
    train_subset: int
    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    scheduler: str
    warmup_epochs: float
    warmup_from: float
    decay_to: float
    bias_lr_factor: float
    decay_all: bool
    label_smoothing: float
    lookahead: bool
    whiten_bias_epochs: int
    tta_views: int
    compile: bool
    nproc: int
    augment: Augment
    # The globals set under this model's own key; only for naming keys in messages, never hashed.
    overridden: frozenset[str] = field(default=frozenset(), compare=False)

    def key(self, name: str) -> str:
        """Where `name` was written in params.yaml: under this model, or as the global."""
        return f"models.{self.name}.{name}" if name in self.overridden else name

    def settings(self) -> dict[str, Any]:
        settings = asdict(self)
        del settings["overridden"]
        return settings

    def params_hash(self) -> str:
        """A short hash of these settings, recorded in provenance so differences can be explained."""
        return fingerprint(self.settings())


# What evaluation reads; everything else only changes a result through the trained weights.
EVALUATION_KEYS = ("name", "arch", "seed", "device", "precision", "eval_batch_size", "tta_views")
# What training never reads: its per-epoch validation runs without test-time augmentation.
EVALUATION_ONLY = ("tta_views",)


def fingerprint(settings: dict[str, Any]) -> str:
    canonical = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def training_settings(cfg: ModelConfig) -> dict[str, Any]:
    """Everything that can change the trained weights: train@<model> depends on exactly this."""
    return {key: value for key, value in cfg.settings().items() if key not in EVALUATION_ONLY}


def evaluation_settings(cfg: ModelConfig) -> dict[str, Any]:
    """What evaluate@<model> reads besides the weights, and the hash its provenance records."""
    settings = cfg.settings()
    return {**{key: settings[key] for key in EVALUATION_KEYS}, "params_hash": cfg.params_hash()}


@dataclass(frozen=True)
class Params:
    seed: int
    val_size: int
    models: dict[str, ModelConfig]


class Section:
    """One mapping of params.yaml: take keys with checks, then refuse whatever is left over."""

    def __init__(self, mapping: Any, where: str):
        if not isinstance(mapping, dict):
            raise ConfigError(f"params.yaml: {where or 'top level'} must be a mapping, got {_show(mapping)}")
        self.mapping, self.where, self.known = mapping, where, set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def take(self, name: str, check, default: Any = REQUIRED, allowed: str = "") -> Any:
        self.known.add(name)
        if name not in self.mapping:
            if default is REQUIRED:
                raise ConfigError(f"params.yaml: {self.key(name)}: required key missing ({allowed})")
            return default
        return check(self.key(name), self.mapping[name])

    def finish(self, extra: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.mapping) - self.known - set(extra), key=str)
        if unknown:
            allowed = ", ".join(sorted(self.known | set(extra)))
            raise ConfigError(
                f"params.yaml: {self.key(str(unknown[0]))}: unknown key (allowed: {allowed})"
            )


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list, dict)) else str(value)


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {_show(value)}: {allowed}")


def integer(low: int, high: float = math.inf):
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
            raise _fail(key, value, f"must be an integer {bound}")
        return value

    return check


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    def check(key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
            raise _fail(key, value, f"must be a number in {left}{low}, {high}{right}")
        return float(value)

    return check


def choice(options: tuple):
    def check(key: str, value: Any):
        if isinstance(value, bool) or value not in options:
            raise _fail(key, value, f"must be one of {', '.join(map(str, options))}")
        return value

    return check


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, value, "must be true or false")
    return value


def flip(key: str, value: Any) -> bool | str:
    if not (isinstance(value, bool) or value == "alternate"):
        raise _fail(key, value, "must be true, false or alternate")
    return value


def device(key: str, value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise _fail(key, value, "must be auto, cpu, cuda or cuda:N")
    return value


def int_list(key: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    ):
        raise _fail(key, value, "must be a non-empty list of integers >= 1")
    return value


# Globals a model may override under its own key: name -> (check, default).
GLOBALS = {
    "seed": (integer(0, 2**32 - 1), 0),
    "device": (device, "auto"),
    "precision": (choice(PRECISIONS), "auto"),
    "batch_size": (integer(1, 65536), 256),
    "eval_batch_size": (integer(1, 65536), 1024),
    "epochs": (integer(1, 10000), 10),
    "train_subset": (integer(0), 0),
    "compile": (boolean, False),
    "nproc": (integer(1, 1024), 1),
}
OPTION_CHECKS = {
    "hidden": int_list,
    "channels": int_list,
    "dropout": number(0, 1, high_open=True),
    "downsample": choice((1, 2, 4)),
    "whiten": boolean,
    "dirac": boolean,
    "bn_scale": boolean,
    "logit_scale": number(0, 100, low_open=True),
}


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole file: a typo anywhere stops every stage before any work."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse(raw)


def load_model(name: str, path: str | Path = "params.yaml") -> ModelConfig:
    """One model's settings; the whole file is still validated."""
    return pick(load(path), name)


def pick(params: Params, name: str) -> ModelConfig:
    if name not in params.models:
        raise ConfigError(f"params.yaml: models.{name}: no such model (have: {', '.join(params.models)})")
    return params.models[name]


def parse(raw: Any) -> Params:
    top = Section(raw, "")
    defaults = {name: top.take(name, check, default) for name, (check, default) in GLOBALS.items()}
    val_size = top.take("val_size", integer(1), 10000)
    models = top.take("models", lambda key, value: value, allowed="a mapping of model name to settings")
    top.finish()
    Section(models, "models")  # type check only: model names are free
    if not models:
        raise ConfigError("params.yaml: models: must name at least one model")
    parsed = {str(name): parse_model(str(name), entry, defaults) for name, entry in models.items()}
    return Params(seed=defaults["seed"], val_size=val_size, models=parsed)


def parse_model(name: str, entry: Any, defaults: dict[str, Any]) -> ModelConfig:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"params.yaml: models.{name}: model names may use letters, digits, _ and - only")
    s = Section(entry, f"models.{name}")
    arch = s.take("arch", choice(tuple(ARCH_OPTIONS)), allowed="one of " + ", ".join(ARCH_OPTIONS))
    options = {key: s.take(key, OPTION_CHECKS[key], default) for key, default in ARCH_OPTIONS[arch].items()}
    merged = {key: s.take(key, check, defaults[key]) for key, (check, _) in GLOBALS.items()}
    config = ModelConfig(
        name=name,
        arch=arch,
        options=options,
        **merged,
        optimizer=s.take("optimizer", choice(OPTIMIZERS), "adamw"),
        lr=s.take("lr", number(0, 10, low_open=True), allowed="learning rate, a number > 0"),
        momentum=s.take("momentum", number(0, 1, high_open=True), 0.9),
        nesterov=s.take("nesterov", boolean, True),
        weight_decay=s.take("weight_decay", number(0, 1), 0.0),
        scheduler=s.take("scheduler", choice(SCHEDULERS), "cosine"),
        warmup_epochs=s.take("warmup_epochs", number(0, 10000), 0.0),
        warmup_from=s.take("warmup_from", number(0, 1), 0.0),
        decay_to=s.take("decay_to", number(0, 1), 0.0),
        bias_lr_factor=s.take("bias_lr_factor", number(0, 1000, low_open=True), 1.0),
        decay_all=s.take("decay_all", boolean, False),
        label_smoothing=s.take("label_smoothing", number(0, 1, high_open=True), 0.0),
        lookahead=s.take("lookahead", boolean, False),
        whiten_bias_epochs=s.take("whiten_bias_epochs", integer(0, 10000), 3),
        tta_views=s.take("tta_views", choice(TTA_VIEWS), 1),
        augment=s.take("augment", parse_augment, Augment(0, False, 0.0)),
    )
    s.finish()
    config = replace(config, overridden=frozenset(GLOBALS) & set(entry))
    if config.warmup_epochs > config.epochs:
        raise _fail(s.key("warmup_epochs"), config.warmup_epochs, f"must not exceed epochs ({config.epochs})")
    check_batch_split(config, config.nproc, f"nproc ({config.nproc})")
    return config


def parse_augment(key: str, value: Any) -> Augment:
    s = Section(value, key)
    augment = Augment(
        crop=s.take("crop", integer(0, 14), 0),
        flip=s.take("flip", flip, False),
        erase=s.take("erase", number(0, 1), 0.0),
    )
    s.finish()
    return augment


def check_size(key: str, value: int, available: int) -> None:
    """Refuse a size parameter larger than the data it draws from."""
    if value > available:
        raise _fail(key, value, f"must not exceed the {available} images available")


def check_resolved(path: Path, settings: dict[str, Any], name: str) -> None:
    """Run only on the settings DVC hashed: configure's file must match params.yaml as it is now."""
    try:
        written = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        written = None
    if written != json.loads(json.dumps(settings)):
        raise ConfigError(f"{path}: missing or out of date with params.yaml (run: python -m stages.configure {name})")


def check_machine(cfg: ModelConfig) -> None:
    """Refuse a device or precision this machine lacks, naming the key where params.yaml sets it."""
    import torch  # here, not at the top: the configure stage validates params without paying for torch

    cuda = torch.cuda.is_available()
    if cfg.device.startswith("cuda"):
        if not cuda:
            raise _fail(cfg.key("device"), cfg.device, "CUDA is not available here (use auto or cpu)")
        index = int(cfg.device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise _fail(cfg.key("device"), cfg.device, f"only {torch.cuda.device_count()} CUDA device(s) here")
        if ":" in cfg.device and cfg.nproc > 1:
            raise _fail(cfg.key("device"), cfg.device, f"names one GPU, but nproc is {cfg.nproc} (use auto or cuda)")
    if cuda and cfg.device != "cpu" and cfg.nproc > torch.cuda.device_count():
        raise _fail(cfg.key("nproc"), cfg.nproc, f"only {torch.cuda.device_count()} CUDA device(s) here")
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not cuda)
    if cfg.precision == "fp16" and on_cpu:
        raise _fail(cfg.key("precision"), cfg.precision, "fp16 needs CUDA (use auto, fp32 or bf16 on CPU)")


def check_world(cfg: ModelConfig, size: int) -> None:
    """A launch by hand (torchrun on several nodes) may set more processes than nproc: batches must still split."""
    check_batch_split(cfg, size, f"the {size} processes")


def check_batch_split(cfg: ModelConfig, processes: int, described: str) -> None:
    """Every process takes an equal slice of each training batch."""
    if cfg.batch_size % processes:
        raise _fail(cfg.key("batch_size"), cfg.batch_size, f"must be a multiple of {described}")
