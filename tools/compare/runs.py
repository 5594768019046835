"""The DVC side of a comparison: scratch worktrees, which stages a change reaches, results made here.

Every revision gets a git worktree of its own, so this checkout is never touched, and each
worktree uses this checkout's DVC cache: its run-cache restores any stage that ran here before
with the same deps and params, so a comparison repeated on one machine trains nothing twice.
"""

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fmnist.core import paths
from fmnist.core.errors import FmnistError


def command(cwd: Path, *args: str) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise FmnistError(f"{' '.join(args)} failed in {cwd}: {' '.join(last)}")
    return result.stdout


def dvc(cwd: Path, *args: str) -> str:
    return command(cwd, sys.executable, "-m", "dvc", *args)


@contextlib.contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """A scratch checkout of `rev` that shares `repo`'s DVC cache; removed afterwards."""
    cache = Path(dvc(repo, "cache", "dir").strip()).resolve()
    with tempfile.TemporaryDirectory(prefix="fmnist-compare-") as scratch:
        tree = Path(scratch) / rev.replace("/", "-")
        command(repo, "git", "worktree", "add", "--quiet", "--detach", str(tree), rev)
        try:
            dvc(tree, "config", "--local", "cache.dir", str(cache))
            yield tree
        finally:
            command(repo, "git", "worktree", "remove", "--force", str(tree))


def reached(tree: Path, base_lock: str) -> list[str]:
    """The stages of `tree` whose deps or params differ from what `base_lock` (the base's dvc.lock)
    records, and every stage after them: what DVC would rerun to take the base to this tree.

    configure runs first, for real (it is cheap and imports no torch), so that each model's stages
    compare their own settings files rather than the whole of params.yaml.
    """
    import networkx
    from dvc.repo import Repo

    (tree / "dvc.lock").write_text(base_lock)
    dvc(tree, "repro", "--quiet", "configure")
    with Repo(str(tree)) as repo, repo.lock:
        graph = repo.index.graph  # an edge runs from each stage to a stage it depends on
        changed = set()
        for stage in reversed(list(networkx.topological_sort(graph))):
            upstream = any(dependency in changed for dependency in graph.successors(stage))
            if upstream or stage.changed_stage() or stage.changed_deps(allow_missing=True):
                changed.add(stage)
        return sorted(stage.name for stage in changed)


def evaluate(tree: Path, models: list[str], machine: dict[str, str]) -> list[str]:
    """Each model's results in `tree`, made on this machine: restored by DVC when the run-cache
    holds a run of this kind, else trained and evaluated here. Returns the stages that ran."""
    if not models:
        return []
    output = dvc(tree, "repro", *(f"evaluate@{name}" for name in models))
    elsewhere = [name for name in models if provenance(tree, name).get("machine") != machine[name]]
    if elsewhere:  # restored from a cache another kind of machine filled (a shared remote's)
        stages = [f"{stage}@{name}" for name in elsewhere for stage in ("train", "evaluate")]
        output += dvc(tree, "repro", "--force", "--single-item", *stages)
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


def provenance(tree: Path, name: str, committed: bool = False) -> dict:
    """What made a model's results: evaluate's file, or (committed) the copy summarize published."""
    path = tree / (paths.REPORTS / "provenance" / f"{name}.json" if committed else paths.provenance(name))
    return json.loads(path.read_text()) if path.exists() else {}


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None
