"""Progress on long work: rich bars on a terminal, one plain line per epoch in a log."""

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter:
    """Shows epoch and batch progress with the running loss and images per second."""

    def __init__(self, title: str, epochs: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.title, self.epochs = title, epochs
        self.bars = None
        if self.console.is_terminal:
            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.epoch_task = self.bars.add_task(f"{title} epochs", total=epochs, status="")
            self.batch_task = self.bars.add_task("batches", total=1, status="")

    @property
    def shows_batches(self) -> bool:
        """Whether batch progress is shown; reading the running loss costs a device sync."""
        return self.bars is not None

    def __enter__(self) -> "Reporter":
        if self.bars:
            self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bars:
            self.bars.stop()

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.started = time.perf_counter()
        if self.bars:
            self.bars.reset(self.batch_task, total=batches, description=f"epoch {epoch}", status="")

    def batches_done(self, batches: int, images: int, loss: float) -> None:
        """Progress within the epoch so far: batches and images done, the latest batch's loss."""
        if self.bars:
            rate = images / max(time.perf_counter() - self.started, 1e-9)
            status = f"loss {loss:.4f}  {rate:,.0f} img/s"
            self.bars.update(self.batch_task, completed=batches, status=status)

    def end_epoch(self, summary: dict) -> None:
        shown = {k: v for k, v in summary.items() if v == v}  # NaN: no validation split (val_size: 0)
        line = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        if self.bars:
            accuracy = "val acc" if "val_accuracy" in shown else "train acc"
            score = shown.get("val_accuracy", summary["train_accuracy"])
            self.bars.update(self.epoch_task, advance=1, status=f"{accuracy} {score:.4f}")
            self.bars.console.print(f"{self.title}: {line}")
        else:
            print(f"{self.title}: {line}", file=sys.stderr, flush=True)


class Silent(Reporter):
    """A reporter that shows nothing: for benchmarks, which print their own figures, and ranks other than 0."""

    def __init__(self) -> None:
        super().__init__("", 0, Console(quiet=True, force_terminal=False))

    def end_epoch(self, summary: dict) -> None:
        pass
