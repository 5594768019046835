"""params.yaml into settings: each value checked against its declaration (fmnist.core.settings), every message here.

Only configure imports this package, so editing a message reruns configure alone: its JSON comes
out identical and DVC skips everything downstream.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmnist.core import settings
from fmnist.core.errors import ConfigError
from fmnist.core.settings import BOOL, DATA, EVAL, GLOBAL, MODEL, Device, Int, OneOf, Real, Widths
from fmnist.params import safe_yaml

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a file name and a stage argument, never an option


@dataclass(frozen=True)
class ModelSettings:
    """One model's settings: what training reads, and what evaluation alone reads."""

    recipe: settings.Recipe
    evaluation: settings.Evaluation
    own_globals: frozenset[str]  # the globals this model sets under its own key


@dataclass(frozen=True)
class Params:
    data: settings.Data
    models: dict[str, ModelSettings]
    globals_: dict[str, Any]

    def reach(self, name: str) -> tuple[list[str], list[str]]:
        """The models global `name` reaches, and those that set their own."""
        own = [model for model, parsed in self.models.items() if name in parsed.own_globals]
        return [model for model in self.models if model not in own], own

    def own_value(self, model: str, name: str) -> str:
        return f"{model} ({settings.show(getattr(self.models[model].recipe, name))})"

    def reach_lines(self) -> list[str]:
        """A line for each global set away from its declared default: the models it reaches, and
        those that set their own (which a change of the global does not retrain)."""
        lines = []
        for f in settings.declared(settings.Recipe, GLOBAL):
            value = self.globals_[f.name]
            if value == settings.default(f):
                continue
            reached, own = self.reach(f.name)
            line = f"{f.name} = {settings.show(value)} reaches {', '.join(reached) or 'no model'}"
            if own:
                values = [self.own_value(model, f.name) for model in own]
                listed = f"{', '.join(values[:-1])} and {values[-1]}" if len(values) > 1 else values[0]
                line += f"; {listed} set{'s' * (len(own) == 1)} {'its' if len(own) == 1 else 'their'} own"
            lines.append(line)
        return lines


STEM_PIXELS = 27  # the cnn's 2x2 stem, unpadded, on a 28 x 28 picture


def check_fits(recipe: settings.Recipe) -> None:
    """Refuse a cnn whose conv groups would pool a 28 x 28 picture down to nothing: each group's
    2x2 max-pool halves the maps (rounding down), and the head needs at least 1 x 1."""
    if recipe.arch != "cnn":
        return
    sizes = [STEM_PIXELS]
    for _ in recipe.options["channels"]:
        sizes.append(sizes[-1] // 2)
    if sizes[-1] < 1:
        fit = sum(size >= 1 for size in sizes[1:])
        raise ConfigError(
            f"params.yaml: models.{recipe.name}.channels = {settings.show(recipe.options['channels'])}: "
            f"{len(sizes) - 1} conv groups pool a 28 x 28 picture to nothing "
            f"({' -> '.join(map(str, sizes))} pixels); at most {fit} fit"
        )


def allows(allowed: Any, value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(allowed, Int):
        return number and isinstance(value, int) and allowed.low <= value <= allowed.high
    if isinstance(allowed, Real):
        return (
            number
            and math.isfinite(value)
            and (value > allowed.low if allowed.low_open else value >= allowed.low)
            and (value < allowed.high if allowed.high_open else value <= allowed.high)
        )
    if isinstance(allowed, OneOf):  # 1 == True in Python: a bool matches only a bool
        return any(
            value == option and isinstance(value, bool) == isinstance(option, bool) for option in allowed.options
        )
    if isinstance(allowed, Widths):
        return (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= allowed.most for v in value)
        )
    return isinstance(value, str) and re.fullmatch(allowed.pattern, value) is not None  # Device


def wanted(allowed: Any) -> str:
    """What a value must be, for the error message."""
    if isinstance(allowed, Int):
        bound = f">= {allowed.low}" if allowed.high == math.inf else f"in [{allowed.low}, {allowed.high}]"
        return f"must be an integer {bound}"
    if isinstance(allowed, Real):
        left, right = "(" if allowed.low_open else "[", ")" if allowed.high_open else "]"
        return f"must be a number in {left}{allowed.low}, {allowed.high}{right}"
    if allowed == BOOL:
        return "must be true or false"
    if isinstance(allowed, OneOf):
        return "must be one of " + ", ".join(str(o).lower() if isinstance(o, bool) else str(o) for o in allowed.options)
    if isinstance(allowed, Widths):
        return f"must be a non-empty list of integers in [1, {allowed.most}]"
    assert isinstance(allowed, Device)
    return "must be auto, cpu, cuda or cuda:N"


def checked(key: str, allowed: Any, value: Any) -> Any:
    if not allows(allowed, value):
        raise ConfigError(f"params.yaml: {key} = {settings.show(value)}: {wanted(allowed)}")
    return float(value) if isinstance(allowed, Real) else value


class Section:
    """One mapping of params.yaml: take keys with their checks, then refuse whatever is left over."""

    def __init__(self, values: Any, where: str):
        self.mapping, self.where, self.known = mapping(where, values), where, set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def take(self, f, default: Any = settings.REQUIRED) -> Any:
        """Field `f`'s checked value, or `default` (else the declared default) when absent."""
        self.known.add(f.name)
        if f.name in self.mapping:
            return checked(self.key(f.name), f.metadata["allowed"], self.mapping[f.name])
        value = settings.default(f) if default is settings.REQUIRED else default
        if value is settings.REQUIRED:
            raise ConfigError(f"params.yaml: {self.key(f.name)}: required key missing ({f.metadata['doc']})")
        return value

    def take_all(self, cls: type, scope: str | None = None) -> dict[str, Any]:
        return {f.name: self.take(f) for f in settings.declared(cls, scope)}

    def finish(self) -> None:
        unknown = sorted(set(self.mapping) - self.known, key=str)
        if unknown:
            allowed = ", ".join(sorted(self.known))
            raise ConfigError(f"params.yaml: {self.key(str(unknown[0]))}: unknown key (allowed: {allowed})")


def mapping(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"params.yaml: {key or 'top level'} must be a mapping, got {settings.show(value)}")
    return value


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole file: a typo anywhere stops every stage before any work."""
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    return parse(safe_yaml.load(text, str(path)))


def parse(raw: Any) -> Params:
    top = Section(raw, "")
    globals_ = top.take_all(settings.Recipe, GLOBAL)
    data = settings.Data(seed=globals_["seed"], **top.take_all(settings.Data, DATA))
    models = mapping("models", top.mapping.get("models"))
    top.known.add("models")
    top.finish()
    if not models:
        raise ConfigError("params.yaml: models: must name at least one model")
    parsed = {str(name): parse_model(str(name), entry, globals_) for name, entry in models.items()}
    return Params(data, parsed, globals_)


def parse_model(name: str, entry: Any, globals_: dict[str, Any]) -> ModelSettings:
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"params.yaml: models.{name}: a model name is 1-64 letters, digits, _ and -, "
            "starting with a letter or digit"
        )
    s = Section(entry, f"models.{name}")
    own = s.take_all(settings.Recipe, MODEL)
    merged = {f.name: s.take(f, globals_[f.name]) for f in settings.declared(settings.Recipe, GLOBAL)}
    options = s.take_all(settings.ARCH_OPTIONS[own["arch"]])
    augment = Section(s.mapping.get("augment", {}), s.key("augment"))
    s.known.add("augment")
    recipe = settings.Recipe(
        name, **own, **merged, options=options, augment=settings.Augment(**augment.take_all(settings.Augment))
    )
    evaluation = settings.Evaluation(**s.take_all(settings.Evaluation, EVAL))
    augment.finish()
    s.finish()
    if recipe.batch_size % recipe.nproc:
        where = f"models.{name}.batch_size" if "batch_size" in entry else "batch_size"
        raise ConfigError(f"params.yaml: {where} = {recipe.batch_size}: must be a multiple of nproc ({recipe.nproc})")
    check_fits(recipe)
    own_globals = frozenset(f.name for f in settings.declared(settings.Recipe, GLOBAL) if f.name in s.mapping)
    return ModelSettings(recipe, evaluation, own_globals)
