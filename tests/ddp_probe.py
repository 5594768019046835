"""The train stage as torchrun runs it, instrumented for tests: python -m tests.ddp_probe MODEL [--fresh].

PROBE_LOG=DIR: each rank appends every file it renames into place (every output is written so) to
DIR/rank<N>.txt. PROBE_CRASH_EPOCH=K: rank 1 dies after epoch K, as a lost machine would.
PROBE_MASKS=DIR: each rank writes a digest of its first training-mode dropout mask to DIR/rank<N>.txt.
"""

import hashlib
import os
from pathlib import Path

import torch

from fmnist.core import cli
from fmnist.train import training
from stages import train

RANK = int(os.environ["RANK"])

if "PROBE_LOG" in os.environ:
    log = Path(os.environ["PROBE_LOG"]) / f"rank{RANK}.txt"
    real_replace = os.replace

    def recording_replace(source, target):
        with open(log, "a") as f:
            f.write(f"{target}\n")
        real_replace(source, target)

    os.replace = recording_replace

if "PROBE_CRASH_EPOCH" in os.environ and RANK == 1:
    real_train_epoch = training.Trainer.train_epoch
    crash_epoch = int(os.environ["PROBE_CRASH_EPOCH"])

    def crashing_train_epoch(trainer, epoch, reporter):
        losses = real_train_epoch(trainer, epoch, reporter)
        if epoch == crash_epoch + 1:  # trained, not yet validated or saved
            os._exit(1)
        return losses

    training.Trainer.train_epoch = crashing_train_epoch

if "PROBE_MASKS" in os.environ:
    masks = Path(os.environ["PROBE_MASKS"]) / f"rank{RANK}.txt"
    real_dropout = torch.nn.functional.dropout

    def recording_dropout(input, p=0.5, training=True, inplace=False):
        output = real_dropout(input, p, training, inplace)
        if training and not masks.exists():
            masks.write_text(hashlib.sha256((output == 0).numpy().tobytes()).hexdigest())
        return output

    torch.nn.functional.dropout = recording_dropout

cli.run(train.main)
