"""Verify a GPU machine in one command: `make gpu-check` (needs torch, not dvc).

1. the CUDA tests;
2. the whole default pipeline as plain Python stages on the GPU, twice, in two scratch copies of
   this repository, and whether the two runs gave the same weights and metrics;
3. the full-resolution ResNet-18 recipe of docs/gpu.md.
Then one Markdown table to paste into an issue: per-stage wall time, training images/s, peak GPU
memory and test accuracy.

Where pydantic is missing (the GPU image), configure cannot run: the scratch copies take this
checkout's configs/ instead, so run `python -m stages.configure` before carrying it there.
"""

import copy
import dataclasses
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fmnist.core import files, paths, settings
from tools.project import ROOT, copy_project, set_dotted, stage_commands

# docs/gpu.md's full-resolution recipe, its `dvc exp run -S` options as keys under models.resnet18.
RESNET_FULL = {"downsample": 1, "epochs": 12, "batch_size": 512, "lr": 0.2, "augment.erase": 0.25}
CAN_CONFIGURE = importlib.util.find_spec("pydantic") is not None


def full_resolution(recipe: settings.Recipe) -> settings.Recipe:
    """RESNET_FULL applied to configure's recipe, for where configure cannot run."""
    changes = {key: value for key, value in RESNET_FULL.items() if key in settings.GLOBALS + ["lr"]}
    options = recipe.options | {"downsample": RESNET_FULL["downsample"]}
    augment = dataclasses.replace(recipe.augment, erase=RESNET_FULL["augment.erase"])
    return dataclasses.replace(recipe, **changes, options=options, augment=augment)


def scratch_copy(raw: Path, params: dict | None = None) -> Path:
    """This checkout's files in a new temporary directory, with `params` as params.yaml if given,
    and `raw` as data/raw if this checkout has it (to skip the download)."""
    repo = copy_project(Path(tempfile.mkdtemp(prefix="gpu-check-")) / "repo")
    if params is not None:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if raw.is_dir():
        shutil.copytree(raw, repo / paths.RAW)
    return repo


def run_pipeline(repo: Path, only: set[str] | None = None) -> dict[str, float]:
    """Each stage as `python -m ...`; its wall seconds. Stops on the first failure."""
    seconds = {}
    for name, argv in stage_commands(repo):
        if only and name.partition("@")[2] not in only and "@" in name:
            continue
        if name == "download" and (repo / paths.RAW).is_dir():
            continue
        if name == "configure" and not CAN_CONFIGURE:
            if not (repo / paths.CONFIGS).is_dir():
                shutil.copytree(ROOT / paths.CONFIGS, repo / paths.CONFIGS)
            continue
        started = time.perf_counter()
        result = subprocess.run([sys.executable, *argv[1:]], cwd=repo)
        if result.returncode:
            raise SystemExit(f"gpu-check: stage {name} failed ({result.returncode}) in {repo}")
        seconds[name] = time.perf_counter() - started
    return seconds


def fingerprint(repo: Path) -> dict[str, str]:
    """Weights and quality metrics: what two runs of the same params must agree on."""
    files = sorted((repo / "models").glob("*.pt")) + sorted((repo / "results").glob("*/metrics.json"))
    return {f.relative_to(repo).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def model_rows(repo: Path, seconds: dict[str, float]) -> list[list[str]]:
    rows = []
    for name in sorted(path.name for path in (repo / paths.RESULTS).iterdir()):  # the models this run trained
        timing = json.loads((repo / paths.timing(name)).read_text())
        metrics = json.loads((repo / paths.test_metrics(name)).read_text())
        rows.append(
            [
                name,
                f"{seconds.get(f'train@{name}', 0):.1f}",
                f"{seconds.get(f'evaluate@{name}', 0):.1f}",
                f"{timing['train_images_per_second']:,.0f}",
                f"{timing.get('peak_gpu_memory_mb', 0):,.0f}",
                f"{metrics['test_accuracy']:.4f}",
            ]
        )
    return rows


def markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA GPU is visible here (torch.cuda.is_available() is False)")
    print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    if not CAN_CONFIGURE and not (ROOT / paths.CONFIGS).is_dir():
        raise SystemExit("gpu-check: no pydantic here to run configure, and no configs/ (carry it)")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], cwd=ROOT)
    raw = ROOT / paths.RAW
    runs = []
    for _ in range(2):
        repo = scratch_copy(raw)
        started = time.perf_counter()
        seconds = run_pipeline(repo)
        runs.append((repo, seconds, time.perf_counter() - started))
    matched = fingerprint(runs[0][0]) == fingerprint(runs[1][0])

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"] = {"resnet18": copy.deepcopy(params["models"]["resnet18"])}
    for dotted, value in RESNET_FULL.items():
        set_dotted(params, f"models.resnet18.{dotted}", value)
    full = scratch_copy(raw, params)
    if not CAN_CONFIGURE:
        shutil.copytree(ROOT / paths.CONFIGS, full / paths.CONFIGS)
        recipe = full_resolution(settings.Recipe.read(full / paths.train_config("resnet18")))
        files.write_json(full / paths.train_config("resnet18"), dataclasses.asdict(recipe))
    full_seconds = run_pipeline(full, only={"resnet18"})

    # Markdown, so the whole report pastes into an issue or a pull request as it is.
    print(f"\n### GPU check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}\n")
    print(markdown_row(("model", "train s", "evaluate s", "train img/s", "peak GPU MiB", "test acc")))
    print(markdown_row(("---",) * 6))
    for row in model_rows(runs[0][0], runs[0][1]):
        print(markdown_row(row))
    for row in model_rows(full, full_seconds):
        print(markdown_row([row[0] + " (full resolution)", *row[1:]]))
    print(
        f"\nDefault pipeline as plain Python: {runs[0][2]:.0f} s and {runs[1][2]:.0f} s; the two runs "
        + ("matched (weights and metrics identical)." if matched else "DIFFERED.")
    )
    print(f"CUDA tests (pytest -m cuda): {'passed' if tests.returncode == 0 else 'FAILED'}.")
    if tests.returncode or not matched:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
