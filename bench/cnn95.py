"""The cnn pushed toward 95%: the default recipe with the overrides below, chosen on validation,
then fitted on all 60,000 training images (val_size: 0).

    make cnn95      # = python -m bench.cnn95: one `dvc exp run` of these overrides, the cnn alone

The overrides are a DVC experiment, not a model in params.yaml, so the default `dvc repro` stays
as it is. Its seeds are logged by `python -m bench.trials cnn --seeds 0 1 2 --test --val-size 0
-S KEY=VALUE ...` with the same overrides, and docs/results.md's table of them is generated
(make docs).
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tools.project import spelled_out

# Keys under models.cnn; docs/results.md says how each was chosen.
OVERRIDES = {
    "channels": [64, 128, 192],
    "epochs": 18,
    "augment.crop": 1,
    "tta_views": 6,
}
VAL_SIZE = 0  # the final fit: every training image, the last epoch kept

# The validation screen, seed 0 (docs/results.md's table of it is generated from the log):
# (label, overrides under models.cnn). Its runs were on SCREEN_CPU, in bf16.
WIDE = [64, 128, 192]
SCREEN = [
    ("the default: 48/64/128, 9 epochs", {}),
    ("48/64/128, 9 epochs, random 1-px shifts", {"augment.crop": 1}),
    ("48/64/128, 13 epochs", {"epochs": 13}),
    ("48/64/128, 18 epochs", {"epochs": 18}),
    ("64/128/192, 9 epochs", {"channels": WIDE}),
    ("64/128/192, 13 epochs", {"channels": WIDE, "epochs": 13}),
    ("64/128/192, 18 epochs", {"channels": WIDE, "epochs": 18}),
    ("64/128/192, 22 epochs", {"channels": WIDE, "epochs": 22}),
    ("64/128/192, 18 epochs, random erasing 0.2", {"channels": WIDE, "epochs": 18, "augment.erase": 0.2}),
    ("64/128/192, 18 epochs, random 1-px shifts", {"channels": WIDE, "epochs": 18, "augment.crop": 1}),
    ("48/64/128, residual third conv, 18 epochs, 1-px shifts", {"residual": True, "epochs": 18, "augment.crop": 1}),
]
SCREEN_CPU = "AVX512 amx_bf16 avx512_bf16"

# The CPU kinds the frontier was measured on: name -> (precision, the runs' `cpu` in the log).
# Without AMX, oneDNN held to AVX-512 BF16 on the same Xeon (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16).
KINDS = {
    "AMX": ("bf16", SCREEN_CPU),
    "AVX-512 BF16": ("bf16", f"{SCREEN_CPU} onednn=AVX512_CORE_BF16"),
    "AVX2": ("fp32", "AVX2 amx_bf16 avx512_bf16"),  # ATEN_CPU_CAPABILITY=avx2 (and oneDNN held to AVX2)
}

# Test accuracy against training time, over seeds 0-2: (label, overrides, val_size, kind).
FRONTIER = [
    ("the default cnn: 48/64/128, 9 epochs, 2 views", {}, None, "AMX"),
    ("64/128/192, 18 epochs, 6 views", {"channels": WIDE, "epochs": 18, "tta_views": 6}, None, "AMX"),
    ("the same with 1-px shifts, fitted on all 60k (make cnn95)", OVERRIDES, VAL_SIZE, "AMX"),
    ("the same (make cnn95)", OVERRIDES, VAL_SIZE, "AVX2"),
    (
        "48/64/128, 13 epochs, 1-px shifts, 6 views, fitted on all 60k",
        {"epochs": 13, "augment.crop": 1, "tta_views": 6},
        VAL_SIZE,
        "AVX-512 BF16",
    ),
]


def arguments(params: dict) -> list[str]:
    """`-S` arguments for `dvc exp run`: `+` where params.yaml leaves the key to its default."""
    keys = {"val_size": VAL_SIZE} if VAL_SIZE is not None else {}
    keys |= {f"models.cnn.{key}": value for key, value in OVERRIDES.items()}
    return [
        argument
        for key, value in keys.items()
        for argument in ("-S", f"{'' if spelled_out(params, key) else '+'}{key}={json.dumps(value)}")
    ]


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    command = [sys.executable, "-m", "dvc", "exp", "run", "-n", "cnn95", *arguments(params), "evaluate@cnn"]
    print(" ".join(command[2:]))
    raise SystemExit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
