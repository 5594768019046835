"""params.yaml into settings: pydantic checks each section against its declaration
(fmnist.core.settings), and the first problem becomes one line: the key as written, its value, what
is allowed.

Only configure imports this package, so editing a message reruns configure alone: its JSON comes
out identical and DVC skips everything downstream.
"""

import json
import re
from dataclasses import MISSING, asdict, dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fmnist.core import settings
from fmnist.core.errors import ConfigError
from fmnist.params import safe_yaml

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a file name and a stage argument, never an option
STEM_PIXELS = 27  # the cnn's 2x2 stem, unpadded, on a 28 x 28 picture


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
        """A line for each global set away from its default: the models it reaches, and those that
        set their own (which a change of the global does not retrain)."""
        lines = []
        for name, value in self.globals_.items():
            if value == getattr(settings.Globals(), name):
                continue
            reached, own = self.reach(name)
            line = f"{name} = {settings.show(value)} reaches {', '.join(reached) or 'no model'}"
            if own:
                values = [self.own_value(model, name) for model in own]
                listed = f"{', '.join(values[:-1])} and {values[-1]}" if len(values) > 1 else values[0]
                line += f"; {listed} set{'s' * (len(own) == 1)} {'its' if len(own) == 1 else 'their'} own"
            lines.append(line)
        return lines


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole file: a typo anywhere stops every stage before any work."""
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    return parse(safe_yaml.load(text, str(path)))


def parse(raw: Any) -> Params:
    top = check(settings.ParamsFile, raw, "")
    globals_ = {name: getattr(top, name) for name in settings.GLOBALS}
    models = {str(name): parse_model(str(name), entry, globals_) for name, entry in top.models.items()}
    return Params(settings.Data(seed=top.seed, val_size=top.val_size), models, globals_)


def parse_model(name: str, entry: Any, globals_: dict[str, Any]) -> ModelSettings:
    where = f"models.{name}"
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"params.yaml: {where}: a model name is 1-64 letters, digits, _ and -, starting with a letter or digit"
        )
    entry = mapping(where, entry)
    own = names(settings.Recipe) - {"name", "options"}
    arch = entry.get("arch")
    options_class = settings.ARCH_OPTIONS.get(arch if isinstance(arch, str) else "", settings.LogregOptions)
    augment = check(settings.Augment, entry.get("augment", {}), f"{where}.augment")
    given = {key: value for key, value in entry.items() if key in own} | {"name": name, "augment": augment}
    recipe = check(settings.Recipe, globals_ | given, where)
    allowed = own | names(options_class) | names(settings.Evaluation)
    if set(entry) - allowed:
        raise unknown(f"{where}.{sorted(set(entry) - allowed, key=str)[0]}", allowed)
    options = check(options_class, {key: entry[key] for key in names(options_class) & set(entry)}, where)
    evaluation = check(settings.Evaluation, {key: entry[key] for key in names(settings.Evaluation) & set(entry)}, where)
    recipe = replace(recipe, options=asdict(options))
    if recipe.batch_size % recipe.nproc:
        key = f"{where}.batch_size" if "batch_size" in entry else "batch_size"
        raise ConfigError(f"params.yaml: {key} = {recipe.batch_size}: must be a multiple of nproc ({recipe.nproc})")
    check_fits(recipe)
    return ModelSettings(recipe, evaluation, frozenset(settings.GLOBALS) & set(entry))


def check_fits(recipe: settings.Recipe) -> None:
    """Refuse a cnn whose conv groups would pool a 28 x 28 picture down to nothing: each group's
    2x2 max-pool halves the maps (rounding down), and the head needs at least 1 x 1."""
    if recipe.arch != "cnn":
        return
    sizes = [STEM_PIXELS]
    for _ in recipe.options["channels"]:
        sizes.append(sizes[-1] // 2)
    if sizes[-1] < 1:
        raise ConfigError(
            f"params.yaml: models.{recipe.name}.channels = {settings.show(recipe.options['channels'])}: "
            f"{len(sizes) - 1} conv groups pool a 28 x 28 picture to nothing "
            f"({' -> '.join(map(str, sizes))} pixels); at most {sum(size >= 1 for size in sizes[1:])} fit"
        )


@cache
def adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


@cache
def rules(cls: type) -> dict[str, dict]:
    """Each setting `cls` declares, as its JSON Schema rule, with the defaults of lists too (pydantic
    leaves out what a default_factory makes)."""
    made = {f.name: {"default": f.default_factory()} for f in fields(cls) if f.default_factory is not MISSING}
    described = adapter(cls).json_schema()["properties"]
    return {name: rule | made.get(name, {}) for name, rule in described.items() if "description" in rule}


def names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def check(cls: type, values: Any, where: str) -> Any:
    """`values` (one mapping of params.yaml) as a `cls`, or a one-line error naming the first problem."""
    described = rules(cls)
    for key, value in mapping(where, values).items():
        choices = described.get(key, {}).get("enum", ())  # pydantic's Literal takes 1 for true: match the type too
        if choices and not any(value == choice and type(value) is type(choice) for choice in choices):
            raise refused(dotted(where, key), value, described[key])
    try:
        return adapter(cls).validate_python(values)
    except ValidationError as error:
        problem = sorted(error.errors(), key=lambda e: e["type"] == "unexpected_keyword_argument")[0]
        name = str(problem["loc"][0])
        if problem["type"] == "unexpected_keyword_argument":
            raise unknown(dotted(where, name), names(cls)) from None
        if problem["type"] in ("missing", "missing_keyword_argument"):
            doc = described[name]["description"]
            raise ConfigError(f"params.yaml: {dotted(where, name)}: required key missing ({doc})") from None
        raise refused(dotted(where, name), values[name], described[name]) from None


def mapping(where: str, values: Any) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"params.yaml: {where or 'the top level'} = {settings.show(values)}: must be a mapping")
    return values


def dotted(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def unknown(key: str, allowed: set[str]) -> ConfigError:
    return ConfigError(f"params.yaml: {key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def refused(key: str, value: Any, rule: dict) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {settings.show(value)}: {wanted(rule)}")


def wanted(rule: dict) -> str:
    """What a value must be, in words, from its JSON Schema rule."""
    kind = rule.get("type")
    if "enum" in rule:
        return "must be one of " + ", ".join(json.dumps(o) if isinstance(o, bool) else str(o) for o in rule["enum"])
    if "pattern" in rule:
        return f"must be {rule['title']}"
    if kind in ("boolean", "object"):
        return "must be true or false" if kind == "boolean" else "must be a non-empty mapping"
    if kind == "array":
        return f"must be a non-empty list of integers in {interval(rule['items'])}"
    if kind == "integer" and "maximum" not in rule:
        return f"must be an integer >= {rule['minimum']}"
    return f"must be {'an integer' if kind == 'integer' else 'a number'} in {interval(rule)}"


def interval(rule: dict) -> str:
    low = f"({rule['exclusiveMinimum']}" if "exclusiveMinimum" in rule else f"[{rule['minimum']}"
    return low + (f", {rule['exclusiveMaximum']})" if "exclusiveMaximum" in rule else f", {rule['maximum']}]")
