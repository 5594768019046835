"""Training: one entry point (`run`), the loop, optimizer, schedule, lookahead, and the state a run resumes from.

The train stage, the benchmarks and the tests all call `run`. No file I/O here.
"""

import ctypes
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fmnist.core.errors import FmnistError
from fmnist.core.settings import Recipe
from fmnist.data.splits import Split, Splits, stratified_indices
from fmnist.model import models
from fmnist.model.determinism import make_deterministic
from fmnist.model.device import autocast
from fmnist.model.inference import Runtime, loss_and_accuracy, predict, to_float
from fmnist.train.augment import alternating_flips, augment, batch_indices, epoch_randoms
from fmnist.train.distributed import World
from fmnist.train.muon import Muon
from fmnist.train.progress import Reporter, Silent

PROGRESS_EVERY = 10  # batches between progress updates; each one syncs with the device
RECALIBRATION_IMAGES = 4096  # training images whose statistics batch norm takes before each evaluation
WHITENING_IMAGES = 5000  # training images whose 2x2 patches set the whitening filters, as in airbench
LOOKAHEAD_EVERY = 5  # steps between lookahead updates


# A training loss ten times that of guessing uniformly: a model still learning stays far below it.
EXPLODED = 10 * math.log(models.NUM_CLASSES)


class Diverged(FmnistError):
    """The loss exploded or became NaN: the run stops before any of it reaches an output."""


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float  # wall time, for timing.json: never in the curves, which reruns must reproduce

    def curve(self) -> dict:
        """This epoch's row of the curves CSV."""
        row = asdict(self)
        del row["seconds"]
        return row


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, runtime: Runtime, batch_size: int) -> None:
    """Set batch norm's running statistics from `images` under the current weights.

    Running averages lag behind the weights: after a few steps they are still near their initial
    values, so a short run would score at chance. These are fresh: the mean of the per-batch means
    and variances, weighted equally. With equal batches the mean is exact and the variance misses
    only the spread between batch means, which is small for batches of a thousand images.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    model.eval()  # dropout stays off; only the norms collect statistics
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if len(batch) < 2:  # batch norm in training mode needs two values per channel (1 x 1 maps: two images)
            continue
        with autocast(runtime.device, runtime.dtype):
            model(runtime.input(to_float(batch)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


class Lookahead:
    """airbench's lookahead: every few steps the slow copy moves towards the weights, then the
    weights are set to it. Its decay ramps up as (step / total)^3, so late steps average most."""

    def __init__(self, model: nn.Module):
        # State-dict tensors share storage with the live ones (buffers included: batch norm's
        # running statistics are averaged too), so these follow every in-place update.
        self.live = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def update(self, step: int, total: int) -> None:
        """After optimizer step `step` (from 1) of `total`; the last copies the slow weights in for good."""
        if step == total:
            torch._foreach_copy_(self.live, self.slow)
        elif step % LOOKAHEAD_EVERY == 0:
            torch._foreach_lerp_(self.slow, self.live, 1 - 0.95**LOOKAHEAD_EVERY * (step / total) ** 3)
            torch._foreach_copy_(self.live, self.slow)

    def state_dict(self) -> list[torch.Tensor]:
        return self.slow

    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        torch._foreach_copy_(self.slow, state)


def lr_factor(step: int, total: int, warmup: int, recipe: Recipe) -> float:
    """Linear warm-up from `warmup_from`, then constant, cosine, or linear ("onecycle") decay to `decay_to`."""
    if step < warmup:
        return recipe.warmup_from + (1 - recipe.warmup_from) * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    if recipe.scheduler == "cosine":
        return recipe.decay_to + (1 - recipe.decay_to) * 0.5 * (1 + math.cos(math.pi * progress))
    if recipe.scheduler == "onecycle":
        return recipe.decay_to + (1 - recipe.decay_to) * (1 - progress)
    return 1.0


def parameter_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Weights and kernels decay; batch norm's parameters learn `bias_lr_factor` times faster.

    Biases and norms decay only with `decay_all`, then at the weights' absolute rate whatever their
    learning rate, as airbench does: PyTorch multiplies decay by the group's lr.
    """
    norms = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    # Frozen parameters too: the optimizer skips any without a gradient, and the whitening bias
    # stops training part-way (Trainer.train_epoch).
    weights = [p for p in model.parameters() if p.ndim > 1]
    biases = [p for p in model.parameters() if p.ndim <= 1 and id(p) not in norms]
    norm_params = [p for p in model.parameters() if id(p) in norms]
    decay = recipe.weight_decay if recipe.decay_all else 0.0
    return [
        {"params": weights, "weight_decay": recipe.weight_decay},
        {"params": biases, "weight_decay": decay},
        {"params": norm_params, "lr": recipe.lr * recipe.bias_lr_factor, "weight_decay": decay / recipe.bias_lr_factor},
    ]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = [group for group in parameter_groups(model, recipe) if group["params"]]
    # One fused kernel per step, not a loop over tensors: the small models are bound by per-step overhead.
    if recipe.optimizer == "sgd":
        nesterov = recipe.nesterov and recipe.momentum > 0
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=nesterov, fused=True)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, fused=True)
    if recipe.optimizer == "muon":
        filters = [p for p in groups[0]["params"] if p.ndim == 4]
        groups[0]["params"] = [p for p in groups[0]["params"] if p.ndim != 4]
        muon = {"params": filters, "lr": recipe.muon_lr, "momentum": recipe.muon_momentum, "orthogonal": True}
        return Muon([muon, *(group for group in groups if group["params"])], lr=recipe.lr, momentum=recipe.momentum)
    return torch.optim.AdamW(groups, lr=recipe.lr, fused=True)


def keep_freed_memory() -> None:
    """Have glibc's malloc keep the memory tensors free for the next ones, rather than hand it back
    to the kernel: every step frees and reallocates the same feature maps, and by default glibc
    serves each block over 32 MB from fresh pages that the kernel must fault in and zero again at
    every step. The numbers computed are the same. Without glibc (macOS, musl) a no-op."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(-4, 0)  # M_MMAP_MAX (glibc's malloc.h): every block from the heap, which is reused
    mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: nor is the heap's free top returned (the most an int holds)


def run(
    recipe: Recipe,
    splits: Splits,
    *,
    world: World = World(),
    reporter: Reporter | None = None,
    on_epoch: Callable[["Trainer"], None] = lambda trainer: None,
    resume: dict | None = None,
    runtime: Runtime | None = None,
) -> "Trainer":
    """Train `recipe` on `splits` from the start, or from `resume` (a `Trainer.state_dict()`), to its last epoch.

    `runtime`: where to train, if the caller has already chosen (the stage, to join its process group there).
    """
    runtime = runtime or Runtime.create(recipe.device, recipe.precision, recipe.arch)
    keep_freed_memory()
    train = splits.train
    if recipe.train_subset:
        train = train.take(stratified_indices(train.labels, recipe.train_subset, recipe.seed)[0])
    train, val = train.to(runtime.device), splits.val.to(runtime.device)

    def fresh() -> Trainer:
        make_deterministic(recipe.seed, recipe.compile)
        model = models.build(recipe.arch, recipe.options, splits.mean, splits.std)
        return Trainer(model, recipe, runtime, train, val, world)

    trainer = fresh()
    if resume is not None and not trainer.resume(resume):
        trainer = fresh()  # a half-loaded trainer is no start: rebuild it exactly as a fresh run would
    trainer.fit(reporter or Silent(), on_epoch)
    return trainer


class Trainer:
    """Holds everything that changes during training, so a run can stop after any epoch and resume."""

    def __init__(self, model: nn.Sequential, recipe: Recipe, runtime: Runtime, train: Split, val: Split, world: World):
        self.recipe, self.runtime, self.world, self.train, self.val = recipe, runtime, world, train, val
        self.model = runtime.place(model)
        models.fit_to_data(self.model, to_float(train.images[:WHITENING_IMAGES]))
        self.whitening = [m for m in self.model.modules() if isinstance(m, models.Whiten)]
        # Batch norm stays per rank: SyncBatchNorm has no CPU kernel, and evaluation recomputes the statistics.
        self.network = nn.parallel.DistributedDataParallel(self.model) if world.size > 1 else self.model
        self.network = torch.compile(self.network) if recipe.compile else self.network
        self.steps_per_epoch = len(train) // recipe.batch_size or 1
        self.total_steps = self.steps_per_epoch * recipe.epochs
        warmup = round(recipe.warmup * self.total_steps)
        self.optimizer = make_optimizer(self.model, recipe)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, warmup, recipe)
        )
        self.lookahead = Lookahead(self.model) if recipe.lookahead else None
        flips = recipe.augment.flip == "alternate"
        self.flips = alternating_flips(len(train), recipe.seed + 3, runtime.device) if flips else None
        self.pixel_mean = self.model[0].mean.item()  # the training split's, which models.build put in Normalize
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (it is then a no-op).
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.dtype == torch.float16)
        self.shuffle_rng = torch.Generator().manual_seed(recipe.seed + 1)
        self.augment_rng = torch.Generator().manual_seed(recipe.seed + 2)
        if world.size > 1:
            # The global generator draws dropout's masks (shuffling and augmentation have their own,
            # shared by every rank, above): each rank needs its own, as one process draws a fresh
            # mask for every image, and rank 1 would otherwise repeat rank 0's.
            torch.manual_seed(recipe.seed + (world.rank << 32))
        self.history: list[EpochLog] = []
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_accuracy = -1.0

    def fit(self, reporter: Reporter, on_epoch: Callable[["Trainer"], None]) -> None:
        """Train from the current epoch to the last; `on_epoch` runs after each (to save a resume point)."""
        for epoch in range(len(self.history) + 1, self.recipe.epochs + 1):
            started = time.perf_counter()
            train_loss, train_accuracy = self.train_epoch(epoch, reporter)
            recalibrate_batch_norm(
                self.model, self.train.images[:RECALIBRATION_IMAGES], self.runtime, self.recipe.eval_batch_size
            )
            val_loss, val_accuracy = self.validate(epoch)
            if val_accuracy > self.best_accuracy or not len(self.val):  # no validation split: the last epoch
                self.best_accuracy = val_accuracy
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            lr = self.scheduler.get_last_lr()[0]
            log = EpochLog(epoch, train_loss, train_accuracy, val_loss, val_accuracy, lr, time.perf_counter() - started)
            self.history.append(log)
            reporter.end_epoch(asdict(log))
            on_epoch(self)

    def validate(self, epoch: int) -> tuple[float, float]:
        """Loss and accuracy on the validation split (nan for both with val_size: 0)."""
        if not len(self.val):
            return math.nan, math.nan
        # No test-time augmentation here: it would multiply the cost of every epoch's check.
        logits = predict(self.model, self.val.images, self.runtime, self.recipe.eval_batch_size)
        val_loss, val_accuracy = loss_and_accuracy(logits, self.val.labels)
        if not math.isfinite(val_loss):
            raise self.diverged(epoch, f"the validation loss is {val_loss}")
        return val_loss, val_accuracy

    def best_epoch(self) -> "EpochLog":
        """The epoch whose weights were kept: the first best on validation, else the last."""
        return max(self.history, key=lambda log: log.val_accuracy) if len(self.val) else self.history[-1]

    def train_epoch(self, epoch: int, reporter: Reporter) -> tuple[float, float]:
        train, recipe = self.train, self.recipe
        self.model.train()
        for m in self.whitening:  # its bias trains early on only, as in airbench: later it only costs time
            m.bias.requires_grad_(epoch <= recipe.whiten_bias_epochs)
        # Dropping the last partial batch keeps batch norm away from tiny batches.
        batches = batch_indices(len(train), recipe.batch_size, self.shuffle_rng, self.runtime.device)
        batches = batches[: self.steps_per_epoch]
        randoms = epoch_randoms(len(batches), recipe.batch_size, recipe.augment, self.augment_rng, self.runtime.device)
        reporter.start_epoch(epoch, len(batches))
        # Summed loss, correct predictions and images, all-reduced once at the end of the epoch.
        totals = torch.zeros(3, device=self.runtime.device, dtype=torch.float64)
        for i, index in enumerate(batches, 1):
            mine = self.world.part(len(index))  # all ranks draw the same batch; each takes its slice
            index = index[mine]
            flips = self.flips[index] ^ (epoch % 2 == 0) if self.flips is not None else None
            x = augment(
                to_float(train.images[index]),
                recipe.augment,
                randoms[i - 1][:, mine],
                mean=self.pixel_mean,
                flips=flips,
            )
            y = train.labels[index]
            with autocast(self.runtime.device, self.runtime.dtype):
                logits = self.network(self.runtime.input(x))
                loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.lookahead:
                self.lookahead.update((epoch - 1) * self.steps_per_epoch + i, self.total_steps)
            totals[0] += loss.detach() * len(y)
            totals[1] += (logits.argmax(1) == y).sum()
            totals[2] += len(y)
            if reporter.shows_batches and (i % PROGRESS_EVERY == 0 or i == len(batches)):
                reporter.batches_done(i, i * recipe.batch_size, loss.item())
        loss_sum, correct, seen = self.world.sum(totals).tolist()
        # Checked once an epoch, on the sum the epoch needs anyway: a check per step would sync with the device.
        if not loss_sum / seen < EXPLODED:  # NaN fails this too
            raise self.diverged(epoch, f"the training loss is {loss_sum / seen:.3g}")
        return loss_sum / seen, correct / seen

    def diverged(self, epoch: int, why: str) -> Diverged:
        return Diverged(
            f"params.yaml: {self.recipe.key('lr')} = {self.recipe.lr}: training diverged in epoch {epoch} ({why}); "
            "nothing was saved from it (try a lower lr)"
        )

    def state_dict(self) -> dict:
        """Everything a resume needs; every rank must call it (each rank's generators are gathered)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "lookahead": self.lookahead.state_dict() if self.lookahead else [],
            "shuffle_rng": self.shuffle_rng.get_state(),
            "augment_rng": self.augment_rng.get_state(),
            "rng": self.world.gather(self.global_rng_state()),
            "history": [asdict(log) for log in self.history],
            "best_state": self.best_state,
            "best_accuracy": self.best_accuracy,
        }

    def resume(self, state: dict) -> bool:
        """Continue from `state`; False, with one warning, if it does not fit this trainer (then rebuild it)."""
        try:
            self.load_state_dict(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(
                f"warning: the resume point does not fit this model ({first}); training from the start", file=sys.stderr
            )
            return False
        return True

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.lookahead:
            self.lookahead.load_state_dict(state["lookahead"])
        self.shuffle_rng.set_state(state["shuffle_rng"])
        self.augment_rng.set_state(state["augment_rng"])
        mine = state["rng"][self.world.rank]
        torch.set_rng_state(mine["cpu"])
        if mine["cuda"] is not None and self.runtime.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"], self.runtime.device)
        self.history = [EpochLog(**log) for log in state["history"]]
        self.best_state = state["best_state"]
        self.best_accuracy = state["best_accuracy"]

    def global_rng_state(self) -> dict:
        # The training device's generator alone: a resume may see fewer GPUs, or none.
        cuda = torch.cuda.get_rng_state(self.runtime.device) if self.runtime.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}
