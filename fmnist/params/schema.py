"""The declarations written out for people and editors: params.yaml's comment block and its JSON Schema.

    python -m fmnist.params.schema     # rewrite params.schema.json and params.yaml's comment block (make schema)

params.yaml's first line points editors with the YAML language server (VS Code's YAML extension,
among others) at the schema; a test keeps the committed schema and comment block equal to these.
"""

import json
import math
from pathlib import Path

from fmnist.core import settings
from fmnist.core.settings import BOOL, DATA, EVAL, GLOBAL, MODEL, Device, Int, OneOf, Real, Widths
from fmnist.params.parse import MODEL_NAME


def rule(allowed) -> dict:
    if isinstance(allowed, Int):
        return {
            "type": "integer",
            "minimum": allowed.low,
            **({"maximum": allowed.high} if allowed.high < math.inf else {}),
        }
    if isinstance(allowed, Real):
        low = "exclusiveMinimum" if allowed.low_open else "minimum"
        high = "exclusiveMaximum" if allowed.high_open else "maximum"
        return {"type": "number", low: allowed.low, high: allowed.high}
    if allowed == BOOL:
        return {"type": "boolean"}
    if isinstance(allowed, OneOf):
        return {"enum": list(allowed.options)}
    if isinstance(allowed, Widths):
        return {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": allowed.most}, "minItems": 1}
    assert isinstance(allowed, Device)
    return {"type": "string", "pattern": f"^({allowed.pattern})$"}


def described(f, doc: str | None = None) -> dict:
    out = {"description": doc or f.metadata["doc"], **rule(f.metadata["allowed"])}
    value = settings.default(f)
    if value is not settings.REQUIRED:
        out["default"] = round(value, 6) if isinstance(value, float) else value
    return out


def properties(cls: type, scope: str | None = None) -> dict:
    return {f.name: described(f) for f in settings.declared(cls, scope)}


def arch_options() -> dict:
    """Each architecture's own keys. A key two share (whiten) has its check once and each
    architecture's doc and default in its description: a model's arch is not known here."""
    owners: dict[str, list] = {}
    for arch, cls in settings.ARCH_OPTIONS.items():
        for f in settings.declared(cls):
            owners.setdefault(f.name, []).append((arch, f))
    options = {}
    for name, [(arch, f), *more] in owners.items():
        options[name] = described(f, f"{arch} only: {f.metadata['doc']}")
        if more:
            del options[name]["default"]
            options[name]["description"] = "; ".join(
                f"{arch}: {f.metadata['doc']} (default {shown(settings.default(f))})" for arch, f in [(arch, f), *more]
            )
    return options


def model_schema() -> dict:
    augment = {"type": "object", "additionalProperties": False, "properties": properties(settings.Augment)}
    overridable = {
        f.name: described(f, f"this model's {f.name}: {f.metadata['doc']}")
        for f in settings.declared(settings.Recipe, GLOBAL)
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in settings.declared(settings.Recipe) if settings.default(f) is settings.REQUIRED],
        "properties": {
            **properties(settings.Recipe, MODEL),
            **properties(settings.Evaluation, EVAL),
            **arch_options(),
            "augment": augment,
            **overridable,
        },
    }


def schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "params.yaml of the Fashion-MNIST DVC pipeline",
        "type": "object",
        "additionalProperties": False,
        "required": ["models"],
        "properties": {
            **properties(settings.Recipe, GLOBAL),
            **properties(settings.Data, DATA),
            "models": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": f"^{MODEL_NAME.pattern}$"},
                "additionalProperties": model_schema(),
            },
        },
    }


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"


def shown(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(round(value, 4) if isinstance(value, float) else value)


def documented(declared: list, indent: str) -> list[str]:
    lines = []
    for f in declared:
        value = settings.default(f)
        written = "(required)" if value is settings.REQUIRED else shown(value)
        lines.append(f"#{indent}{f.name}: {written}".ljust(34) + f" {f.metadata['doc']}")
    return lines


def comment_block() -> str:
    """Every setting with its default and doc: the comment block params.yaml opens with."""
    lines = [
        "# Every setting of the pipeline, with its default (generated from fmnist/core/settings.py: make schema).",
        "# Globals apply to every model, and a model may override any of them under its own key:",
    ]
    lines += documented(settings.declared(settings.Recipe, GLOBAL), "   ")
    lines += documented(settings.declared(settings.Data, DATA), "   ")
    lines += ["# Each model, under models.<name>:"]
    lines += documented(settings.declared(settings.Recipe, MODEL) + settings.declared(settings.Evaluation), "   ")
    lines += ["#   augment:"] + documented(settings.declared(settings.Augment), "     ")
    for arch, cls in settings.ARCH_OPTIONS.items():
        if settings.declared(cls):
            lines += [f"#   {arch} only:"] + documented(settings.declared(cls), "     ")
    return "\n".join(lines) + "\n"


HEADER = "# yaml-language-server: $schema=params.schema.json\n"
AFTER_BLOCK = "# Try a change without editing:"  # the hand-written part of params.yaml starts here


def with_comment_block(params_text: str) -> str:
    return HEADER + comment_block() + params_text[params_text.index(AFTER_BLOCK) :]


if __name__ == "__main__":
    Path("params.schema.json").write_text(render())
    params = Path("params.yaml")
    params.write_text(with_comment_block(params.read_text()))
