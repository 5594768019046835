"""Stage train@<model>: fit one model from params.yaml; save best-validation weights and curves."""

import argparse
import json

import torch

from fmnist import checkpoint, cli, config, curves, data, device, engine, io, models, paths
from fmnist.progress import Reporter


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
    runtime = engine.Runtime.create(cfg, stats["mean"], stats["std"])

    train = data.load_split(paths.PREPARED, "train")
    config.check_size(f"models.{cfg.name}.train_subset", cfg.train_subset, len(train))
    if cfg.train_subset:
        train = train.take(data.stratified_indices(train.labels, cfg.train_subset, cfg.seed)[0])
    train, val = train.to(runtime.device), data.load_split(paths.PREPARED, "val").to(runtime.device)

    device.make_deterministic(cfg.seed)
    trainer = engine.Trainer(models.build(cfg.arch, cfg.options), cfg, runtime, len(train))
    resume = paths.resume(cfg.name)
    params_hash = config.fingerprint(settings)
    resumed_epochs = try_resume(trainer, resume, params_hash) if not args.fresh else 0
    print(f"train {cfg.name}: {cfg.arch} on {device.describe(runtime.device)}, {runtime.dtype}, "
          f"{len(train)} images, {cfg.epochs} epochs"
          + (f", resuming after epoch {resumed_epochs}" if resumed_epochs else ""))

    def after_epoch(trainer: engine.Trainer) -> None:
        io.save_torch(resume, {"params_hash": params_hash, **trainer.state_dict()})
        # Every epoch, not only at the end, so `dvc plots show` and VS Code plot a running experiment.
        curves.write(paths.curves(cfg.name), trainer.history)

    with Reporter(cfg.name, cfg.epochs) as reporter, device.nondeterministic_ops() as nondeterministic:
        trainer.fit(train, val, reporter, on_epoch=after_epoch)
    write_outputs(cfg, trainer, runtime, len(train), nondeterministic)
    resume.unlink(missing_ok=True)


def try_resume(trainer: engine.Trainer, path, params_hash: str) -> int:
    """Continue from a resume point left by an interrupted run of the same params; else start over."""
    if not path.exists():
        return 0
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # saved on any device
    except Exception:  # a damaged resume point is only a lost shortcut
        return 0
    if state.get("params_hash") != params_hash:
        return 0
    trainer.load_state_dict(state)
    return len(trainer.history)


def write_outputs(cfg: config.ModelConfig, trainer: engine.Trainer, runtime: engine.Runtime, images: int,
                  nondeterministic: list[str]) -> None:
    history = trainer.history
    best = max(history, key=lambda log: log.val_accuracy)  # the first best, as the trainer kept
    checkpoint.save(paths.model(cfg.name), trainer.best_state, cfg.arch, cfg.options,
                    runtime.mean, runtime.std, best.epoch, best.val_accuracy, nondeterministic)
    # Summed per epoch (validation included), so a resumed run reports its whole training time.
    seconds = sum(log.seconds for log in history)
    timing = {
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / len(history), 3),
        "train_images_per_second": round(images * len(history) / seconds, 1),
    }
    if runtime.device.type == "cuda":
        timing["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(runtime.device) / 2**20, 1)
    io.write_json(paths.timing(cfg.name), timing)


if __name__ == "__main__":
    cli.run(main)
