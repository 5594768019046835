"""Stage train@<model>: fit one model from params.yaml; save best-validation weights and curves."""

import argparse
import json
import sys
from dataclasses import asdict

import torch

from fmnist import checkpoint, cli, config, curves, data, device, distributed, engine, io, models, paths
from fmnist.progress import Reporter, Silent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved resume point")
    args = parser.parse_args()
    cfg = config.load_model(args.model)
    settings = config.training_settings(cfg)
    config.check_resolved(paths.train_config(cfg.name), settings, cfg.name)
    config.check_machine(cfg)
    stats = json.loads(paths.STATS.read_text())
    train, val = data.load_split(paths.PREPARED, "train"), data.load_split(paths.PREPARED, "val")
    config.check_size(f"models.{cfg.name}.train_subset", cfg.train_subset, len(train))
    if cfg.nproc > 1 and not distributed.launched():
        # Checked above, once, so a bad parameter or damaged data is one line here and not one per rank.
        sys.exit(distributed.launch(cfg.nproc, "stages.train", sys.argv[1:]))

    runtime = engine.Runtime.create(cfg, stats["mean"], stats["std"])
    if cfg.train_subset:
        train = train.take(data.stratified_indices(train.labels, cfg.train_subset, cfg.seed)[0])
    train, val = train.to(runtime.device), val.to(runtime.device)
    with distributed.world(runtime.device) as world:
        config.check_world(cfg, world.size)
        device.make_deterministic(cfg.seed, cfg.compile)
        trainer = engine.Trainer(models.build(cfg.arch, cfg.options), cfg, runtime, train, world)
        fit(cfg, trainer, train, val, config.fingerprint(settings), resume=not args.fresh)


def fit(cfg: config.ModelConfig, trainer: engine.Trainer, train: data.Split, val: data.Split,
        params_hash: str, resume: bool) -> None:
    """Train, resuming where an interrupted run of the same params stopped; rank 0 writes every output."""
    world, resume_path = trainer.world, paths.resume(cfg.name)
    # Rank 0 decides and tells the others, so a damaged resume point cannot leave ranks waiting.
    state = world.broadcast(read_resume(resume_path, params_hash) if resume and world.main else None)
    if state:
        trainer.load_state_dict(state)
    if world.main:
        print(f"train {cfg.name}: {cfg.arch} on {device.describe(trainer.runtime.device)}, {trainer.runtime.dtype}, "
              f"{len(train)} images, {cfg.epochs} epochs"
              + (f", {world.size} processes" if world.size > 1 else "")
              + (f", resuming after epoch {len(trainer.history)}" if state else ""))

    def after_epoch(trainer: engine.Trainer) -> None:
        if world.main:
            io.save_torch(resume_path, {"params_hash": params_hash, **trainer.state_dict()})
            # Every epoch, not only at the end, so `dvc plots show` and VS Code plot a running experiment.
            curves.write(paths.curves(cfg.name), [asdict(log) for log in trainer.history])

    reporter = Reporter(cfg.name, cfg.epochs) if world.main else Silent()
    with reporter, device.nondeterministic_ops() as nondeterministic:
        trainer.fit(train, val, reporter, on_epoch=after_epoch)
    if world.main:
        write_outputs(cfg, trainer, len(train), nondeterministic)
        resume_path.unlink(missing_ok=True)


def read_resume(path, params_hash: str) -> dict | None:
    """The state an interrupted run of the same params left; None if there is none, or it is unusable."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # saved on any device
    except Exception:  # a damaged resume point is only a lost shortcut
        return None
    return state if state.get("params_hash") == params_hash else None


def write_outputs(cfg: config.ModelConfig, trainer: engine.Trainer, images: int, nondeterministic: list[str]) -> None:
    history, runtime = trainer.history, trainer.runtime
    best = max(history, key=lambda log: log.val_accuracy)  # the first best, as the trainer kept
    checkpoint.save(paths.model(cfg.name), trainer.best_state, cfg.arch, cfg.options,
                    runtime.mean, runtime.std, best.epoch, best.val_accuracy, nondeterministic)
    # Summed per epoch (validation included), so a resumed run reports its whole training time.
    seconds = sum(log.seconds for log in history)
    timing = {
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / len(history), 3),
        "train_images_per_second": round(images * len(history) / seconds, 1),
        "processes": trainer.world.size,
    }
    if runtime.device.type == "cuda":
        timing["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(runtime.device) / 2**20, 1)
    io.write_json(paths.timing(cfg.name), timing)


if __name__ == "__main__":
    cli.run(main)
