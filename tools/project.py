"""The project as a whole, for bench/ and tests/: its stages as commands, its params, a scratch copy."""

import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stage_commands(project: Path) -> list[tuple[str, list[str]]]:
    """(stage, argv) in dvc.yaml's order, which runs each stage after the ones it needs; `foreach`
    stages expanded over params.yaml's models, as DVC names them (train@cnn)."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    models = yaml.safe_load((project / "params.yaml").read_text())["models"]
    commands = []
    for name, stage in stages.items():
        if "foreach" in stage:
            commands += [(f"{name}@{key}", stage["do"]["cmd"].replace("${key}", key).split()) for key in models]
        else:
            commands.append((name, stage["cmd"].split()))
    return commands


def set_dotted(params: dict, dotted: str, value: Any) -> dict:
    """Set `a.b.c` in a params.yaml mapping, creating sections on the way; returns `params`."""
    *parents, key = dotted.split(".")
    section = params
    for parent in parents:
        section = section.setdefault(parent, {})
    section[key] = value
    return params


def spelled_out(params: dict, dotted: str) -> bool:
    """Whether params.yaml, loaded as `params`, writes this dotted key. DVC's `-S KEY=VALUE` sets only
    such a key (its Hydra overrides refuse the others); `-S +KEY=VALUE` adds one it lacks."""
    section = params
    for part in dotted.split("."):
        if not isinstance(section, dict) or part not in section:
            return False
        section = section[part]
    return True


def copy_project(into: Path, revision: str | None = None) -> Path:
    """`revision`'s files (git archive), or this checkout's tracked and untracked-but-not-ignored
    files for None, copied into a new directory `into`."""
    into.mkdir(parents=True)
    if revision:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
        tarfile.open(fileobj=BytesIO(archive)).extractall(into, filter="data")
        return into
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into
