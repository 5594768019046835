"""What config declares, written out for people and editors: params.yaml's comment block and its JSON Schema.

    python -m fmnist.schema          # rewrite params.schema.json and params.yaml's comment block (make schema)

params.yaml's first line points editors with the YAML language server (VS Code's YAML extension,
among others) at the schema; tests keep the committed schema and comment block equal to these.
"""

import json
from pathlib import Path

from fmnist import config


def property_of(setting: config.Setting) -> dict:
    described = {"description": setting.doc, **setting.check.schema()}
    if setting.default is not config.REQUIRED:
        described["default"] = round(setting.default, 6) if isinstance(setting.default, float) else setting.default
    return described


def properties(declared: dict[str, config.Setting]) -> dict:
    return {name: property_of(setting) for name, setting in declared.items()}


def arch_options() -> dict:
    """Each architecture's own keys. A key two share (whiten) has its check once and each
    architecture's doc and default in its description: a model's arch is not known here."""
    owners: dict[str, list[tuple[str, config.Setting]]] = {}
    for arch, declared in config.ARCH_OPTIONS.items():
        for name, setting in declared.items():
            owners.setdefault(name, []).append((arch, setting))
    options = {}
    for name, [(arch, setting), *more] in owners.items():
        options[name] = property_of(setting) | {"description": f"{arch} only: {setting.doc}"}
        if more:
            del options[name]["default"]
            options[name]["description"] = "; ".join(
                f"{arch}: {setting.doc} (default {shown(setting.default)})" for arch, setting in [(arch, setting), *more])
    return options


def model_schema() -> dict:
    options = arch_options()
    augment = {"type": "object", "additionalProperties": False, "properties": properties(config.AUGMENT)}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name, setting in config.MODEL.items() if setting.default is config.REQUIRED],
        "properties": {**properties(config.MODEL), **options, "augment": augment,
                       **{name: property_of(setting) | {"description": f"this model's {name}: {setting.doc}"}
                          for name, setting in config.GLOBALS.items()}},
    }


def schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "params.yaml of the Fashion-MNIST DVC pipeline",
        "type": "object",
        "additionalProperties": False,
        "required": ["models"],
        "properties": {
            **properties(config.GLOBALS),
            **properties(config.DATA),
            "models": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": f"^{config.MODEL_NAME.pattern}$"},
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


def documented(declared: dict[str, config.Setting], indent: str) -> list[str]:
    return [f"#{indent}{name}: {shown(setting.default) if setting.default is not config.REQUIRED else '(required)'}"
            .ljust(34) + f" {setting.doc}" for name, setting in declared.items()]


def comment_block() -> str:
    """Every setting with its default and doc: the comment block params.yaml opens with."""
    lines = ["# Every setting of the pipeline, with its default (generated: python -m fmnist.schema --comments).",
             "# Globals apply to every model, and a model may override any of them under its own key:"]
    lines += documented(config.GLOBALS, "   ")
    lines += documented(config.DATA, "   ")
    lines += ["# Each model, under models.<name>:"]
    lines += documented(config.MODEL, "   ")
    lines += ["#   augment:"] + documented(config.AUGMENT, "     ")
    for arch, declared in config.ARCH_OPTIONS.items():
        if declared:
            lines += [f"#   {arch} only:"] + documented(declared, "     ")
    return "\n".join(lines) + "\n"


HEADER = "# yaml-language-server: $schema=params.schema.json\n"
AFTER_BLOCK = "# Try a change without editing:"  # the hand-written part of params.yaml starts here


def with_comment_block(params_text: str) -> str:
    return HEADER + comment_block() + params_text[params_text.index(AFTER_BLOCK):]


if __name__ == "__main__":
    Path("params.schema.json").write_text(render())
    params = Path("params.yaml")
    params.write_text(with_comment_block(params.read_text()))
