"""Training and evaluation loops: device, precision, schedule, progress. No file I/O here."""

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fmnist.config import ModelConfig
from fmnist.data import Split, augment, batch_indices, epoch_randoms, to_float
from fmnist.device import autocast, resolve_device, resolve_precision
from fmnist.distributed import World
from fmnist.models import CONVOLUTIONAL
from fmnist.progress import Reporter

PROGRESS_EVERY = 10  # batches between progress updates; each one syncs with the device
RECALIBRATION_IMAGES = 4096  # training images whose statistics batch norm takes before each evaluation


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs, resolved from the config once."""

    device: torch.device
    dtype: torch.dtype
    mean: float
    std: float
    channels_last: bool

    @classmethod
    def create(cls, cfg: ModelConfig, mean: float, std: float) -> "Runtime":
        device = resolve_device(cfg.device)
        dtype = resolve_precision(cfg.precision, device)
        return cls(device, dtype, mean, std, channels_last=cfg.arch in CONVOLUTIONAL)

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this device; convolutions run faster on channels-last memory."""
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        return model.to(self.device, memory_format=memory_format)


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float


def normalize(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    x = (x - runtime.mean) / runtime.std
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, runtime: Runtime, batch_size: int, tta_flip: bool) -> torch.Tensor:
    """Logits (float32) for uint8 images already on the device, in large no-grad batches."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(images[start : start + batch_size]), runtime)
        with autocast(runtime.device, runtime.dtype):
            logits = model(x).float()
            if tta_flip:
                logits = (logits + model(x.flip(3)).float()) / 2
        outputs.append(logits)
    return torch.cat(outputs)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, runtime: Runtime, batch_size: int) -> None:
    """Set batch norm's running statistics to the exact mean and variance of `images` under the current weights.

    Running averages lag behind the weights: after a few steps they are still near their initial
    values, so a short run would score at chance. Exact statistics make every evaluation honest.
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
        with autocast(runtime.device, runtime.dtype):
            model(normalize(to_float(images[start : start + batch_size]), runtime))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


class EMA:
    """An exponential moving average of a model's weights and buffers, updated without a host sync."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model)
        self.decay = decay
        self.module.requires_grad_(False)
        # State-dict tensors share storage with the live ones, so the pairs taken here follow every
        # in-place update of either model (optimizer steps, load_state_dict) without rebuilding.
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        self.averaged = [a for a, _ in pairs if a.is_floating_point()]
        self.current = [c for a, c in pairs if a.is_floating_point()]
        self.counters = [(a, c) for a, c in pairs if not a.is_floating_point()]  # batch norm's step counts

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.averaged, self.current, 1 - self.decay)
        for a, c in self.counters:
            a.copy_(c)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


def lr_factor(step: int, total: int, warmup: int, shape: str) -> float:
    """Linear warm-up, then constant, cosine, or linear ("onecycle") decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    if shape == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if shape == "onecycle":
        return 1 - progress
    return 1.0


def make_optimizer(model: nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    # Weight decay on weight matrices and kernels only; decaying norms and biases hurts.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # One fused kernel per step, not a loop over tensors: the small models are bound by per-step overhead.
    if cfg.optimizer == "sgd":
        nesterov = cfg.nesterov and cfg.momentum > 0
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


class Trainer:
    """Holds everything that changes during training, so a run can stop after any epoch and resume."""

    def __init__(self, model: nn.Module, cfg: ModelConfig, runtime: Runtime, train_size: int, world: World = World()):
        self.cfg, self.runtime, self.world = cfg, runtime, world
        self.model = runtime.place(model)
        # Batch norm stays per rank: SyncBatchNorm has no CPU kernel, and evaluation recomputes the statistics.
        self.forward = nn.parallel.DistributedDataParallel(self.model) if world.size > 1 else self.model
        self.forward = torch.compile(self.forward) if cfg.compile else self.forward
        self.steps_per_epoch = train_size // cfg.batch_size or 1
        total = self.steps_per_epoch * cfg.epochs
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, total, warmup, cfg.scheduler)
        )
        self.ema = EMA(self.model, cfg.ema) if cfg.ema else None
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (it is then a no-op).
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.dtype == torch.float16)
        self.shuffle_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.augment_rng = torch.Generator().manual_seed(cfg.seed + 2)
        self.history: list[EpochLog] = []
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_accuracy = -1.0

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def fit(self, train: Split, val: Split, reporter: Reporter, on_epoch: Callable[["Trainer"], None] = lambda t: None) -> None:
        """Train from the current epoch to the last; `on_epoch` runs after each (to save a resume point)."""
        for epoch in range(len(self.history) + 1, self.cfg.epochs + 1):
            started = time.perf_counter()
            train_loss, train_accuracy = self.train_epoch(train, epoch, reporter)
            self.recalibrate_batch_norm(train)
            # No flip test-time augmentation here: it would double the cost of every epoch's check.
            logits = predict(self.eval_model, val.images, self.runtime, self.cfg.eval_batch_size, tta_flip=False)
            val_loss, val_accuracy = loss_and_accuracy(logits, val.labels)
            if val_accuracy > self.best_accuracy:
                self.best_accuracy = val_accuracy
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}
            log = EpochLog(epoch, train_loss, train_accuracy, val_loss, val_accuracy,
                           self.scheduler.get_last_lr()[0], time.perf_counter() - started)
            self.history.append(log)
            reporter.end_epoch(asdict(log))
            on_epoch(self)

    def recalibrate_batch_norm(self, train: Split) -> None:
        images = train.images[:RECALIBRATION_IMAGES]
        recalibrate_batch_norm(self.eval_model, images, self.runtime, self.cfg.eval_batch_size)

    def train_epoch(self, train: Split, epoch: int, reporter: Reporter) -> tuple[float, float]:
        self.model.train()
        # Dropping the last partial batch keeps batch norm away from tiny batches.
        batches = batch_indices(len(train), self.cfg.batch_size, self.shuffle_rng, self.runtime.device)
        batches = batches[: self.steps_per_epoch]
        randoms = epoch_randoms(len(batches), self.cfg.batch_size, self.cfg.augment, self.augment_rng, self.runtime.device)
        reporter.start_epoch(epoch, len(batches))
        # Summed loss, correct predictions and images, all-reduced once at the end of the epoch.
        totals = torch.zeros(3, device=self.runtime.device, dtype=torch.float64)
        for i, index in enumerate(batches, 1):
            mine = self.world.part(len(index))  # all ranks draw the same batch; each takes its slice
            index = index[mine]
            x = augment(to_float(train.images[index]), self.cfg.augment, randoms[i - 1][:, mine])
            y = train.labels[index]
            with autocast(self.runtime.device, self.runtime.dtype):
                logits = self.forward(normalize(x, self.runtime))
                loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema:
                self.ema.update()
            totals[0] += loss.detach() * len(y)
            totals[1] += (logits.argmax(1) == y).sum()
            totals[2] += len(y)
            if reporter.live and (i % PROGRESS_EVERY == 0 or i == len(batches)):
                reporter.batches_done(i, i * self.cfg.batch_size, loss.item())
        loss_sum, correct, seen = self.world.sum(totals).tolist()
        return loss_sum / seen, correct / seen

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else {},
            "shuffle_rng": self.shuffle_rng.get_state(),
            "augment_rng": self.augment_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            # The training device's generator alone: a resume may see fewer GPUs, or none.
            "cuda_rng": torch.cuda.get_rng_state(self.runtime.device) if self.runtime.device.type == "cuda" else None,
            "history": [asdict(log) for log in self.history],
            "best_state": self.best_state,
            "best_accuracy": self.best_accuracy,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema:
            self.ema.load_state_dict(state["ema"])
        self.shuffle_rng.set_state(state["shuffle_rng"])
        self.augment_rng.set_state(state["augment_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and self.runtime.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.runtime.device)
        self.history = [EpochLog(**log) for log in state["history"]]
        self.best_state = state["best_state"]
        self.best_accuracy = state["best_accuracy"]
