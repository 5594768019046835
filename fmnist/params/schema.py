"""The declarations written out for people and editors: params.yaml's comment block and its JSON Schema.

    python -m fmnist.params.schema     # rewrite params.schema.json and params.yaml's comment block (make schema)

The schema is pydantic's, of each settings class, put together in params.yaml's shape: a model's
entry holds its recipe, its evaluation and its architecture's keys side by side. params.yaml's
first line points editors with the YAML language server (VS Code's YAML extension, among others)
at it; a test keeps the committed schema and comment block equal to these.
"""

import json
from pathlib import Path

from fmnist.core import settings
from fmnist.params.parse import MODEL_NAME, adapter, rules


def properties(cls: type, skip: set[str] = frozenset()) -> dict:
    return {name: rule for name, rule in rules(cls).items() if name not in skip}


def arch_options() -> dict:
    """Each architecture's own keys. A key two share (whiten) has its check once and each
    architecture's doc and default in its description: a model's arch is not known here."""
    owners: dict[str, list] = {}
    for arch, cls in settings.ARCH_OPTIONS.items():
        for name, rule in properties(cls).items():
            owners.setdefault(name, []).append((arch, rule))
    options = {}
    for name, [(arch, rule), *more] in owners.items():
        options[name] = rule | {"description": f"{arch} only: {rule['description']}"}
        if more:
            docs = [f"{arch}: {rule['description']} (default {shown(rule['default'])})" for arch, rule in owners[name]]
            options[name] = {key: value for key, value in rule.items() if key != "default"} | {
                "description": "; ".join(docs)
            }
    return options


def model_schema() -> dict:
    own = properties(settings.Recipe, set(settings.GLOBALS))
    overridable = {
        name: rule | {"description": f"this model's {name}: {rule['description']}"}
        for name, rule in properties(settings.Globals).items()
    }
    augment = adapter(settings.Augment).json_schema()
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["arch", "lr"],
        "properties": {**own, **properties(settings.Evaluation), **arch_options(), "augment": augment, **overridable},
    }


def schema() -> dict:
    top = adapter(settings.ParamsFile).json_schema()
    top["properties"]["models"] |= {
        "propertyNames": {"pattern": f"^{MODEL_NAME.pattern}$"},
        "additionalProperties": model_schema(),
    }
    return (
        {"$schema": "https://json-schema.org/draft/2020-12/schema"}
        | top
        | {"title": "params.yaml of the Fashion-MNIST DVC pipeline"}
    )


def render() -> str:
    return json.dumps(schema(), indent=2) + "\n"


def shown(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(round(value, 4) if isinstance(value, float) else value)


def documented(rules: dict, indent: str = "   ") -> list[str]:
    """`#   key: default   doc`, a line for each setting `rules` (a schema's properties) describes."""
    return [
        f"#{indent}{name}: {shown(rule['default']) if 'default' in rule else '(required)'}".ljust(34)
        + f" {rule['description']}"
        for name, rule in rules.items()
    ]


def comment_block() -> str:
    """Every setting with its default and doc: the comment block params.yaml opens with."""
    lines = [
        "# Every setting of the pipeline, with its default (generated from fmnist/core/settings.py: make schema).",
        "# Globals apply to every model, and a model may override any of them under its own key:",
        *documented(properties(settings.ParamsFile, {"models"})),
        "# Each model, under models.<name>:",
        *documented(properties(settings.Recipe, set(settings.GLOBALS)) | properties(settings.Evaluation)),
        "#   augment:",
        *documented(properties(settings.Augment), "     "),
    ]
    for arch, cls in settings.ARCH_OPTIONS.items():
        lines += [f"#   {arch} only:", *documented(properties(cls), "     ")] if properties(cls) else []
    return "\n".join(lines) + "\n"


HEADER = "# yaml-language-server: $schema=params.schema.json\n"
AFTER_BLOCK = "# Try a change without editing:"  # the hand-written part of params.yaml starts here


def with_comment_block(params_text: str) -> str:
    return HEADER + comment_block() + params_text[params_text.index(AFTER_BLOCK) :]


if __name__ == "__main__":
    Path("params.schema.json").write_text(render())
    params = Path("params.yaml")
    params.write_text(with_comment_block(params.read_text()))
