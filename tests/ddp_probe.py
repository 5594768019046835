"""The train stage as torchrun runs it, instrumented for tests: python -m tests.ddp_probe MODEL [--fresh].

PROBE_LOG=DIR: each rank appends every file it renames into place (every output is written so) to
DIR/rank<N>.txt. PROBE_CRASH_EPOCH=K: rank 1 dies after epoch K, as a lost machine would.
"""

import os
from pathlib import Path

from fmnist import cli, engine
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
    real_recalibrate = engine.Trainer.recalibrate_batch_norm
    crash_epoch = int(os.environ["PROBE_CRASH_EPOCH"])

    def crashing_recalibrate(trainer, train):
        if len(trainer.history) == crash_epoch:  # epoch K+1 has just been trained
            os._exit(1)
        real_recalibrate(trainer, train)

    engine.Trainer.recalibrate_batch_norm = crashing_recalibrate

cli.run(train.main)
