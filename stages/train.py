"""Stage train@<model>: fit one model from its configs/<model>/train.json; save best-validation weights and curves."""

import argparse
import json
import sys

import torch

from fmnist import checkpoint, cli, curves, data, device, distributed, files, inference, live, models, paths, settings, training
from fmnist.progress import Reporter, Silent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved resume point")
    args = parser.parse_args()
    cfg = settings.read_current(settings.Training, paths.train_config(args.model), args.model)
    device.check_machine(cfg, cfg.nproc)
    train, val = data.load_split(paths.PREPARED, "train"), data.load_split(paths.PREPARED, "val")
    stats = json.loads(paths.STATS.read_text())
    data.check_size(cfg.key("train_subset"), cfg.train_subset, len(train))
    if cfg.nproc > 1 and not distributed.launched():
        # Checked above, once, so a bad parameter or damaged data is one line here and not one per rank.
        sys.exit(distributed.launch(cfg.nproc, "stages.train", sys.argv[1:]))

    runtime = inference.Runtime.create(cfg, stats["mean"], stats["std"])
    if cfg.train_subset:
        train = train.take(data.stratified_indices(train.labels, cfg.train_subset, cfg.seed)[0])
    train, val = train.to(runtime.device), val.to(runtime.device)
    with distributed.world(runtime.device) as world:
        if cfg.batch_size % world.size:  # a launch by hand (torchrun on several nodes) may differ from nproc
            raise cfg.refuse("batch_size", f"must be a multiple of the {world.size} processes")
        per_process = min(cfg.batch_size, len(train)) // world.size
        if per_process < 2:  # batch norm in training mode needs two values per channel
            raise cfg.refuse("train_subset" if cfg.train_subset else "batch_size",
                             f"leaves {per_process} image(s) per batch and process; at least 2 are needed")
        device.make_deterministic(cfg.seed, cfg.compile)
        trainer = training.Trainer(models.build(cfg.arch, cfg.options), cfg, runtime, train, world)
        fit(cfg, trainer, train, val, resume=not args.fresh)


def fit(cfg: settings.Training, trainer: training.Trainer, train: data.Split, val: data.Split, resume: bool) -> None:
    """Train, resuming where an interrupted run of the same params stopped; rank 0 writes every output."""
    world, resume_path = trainer.world, paths.resume(cfg.name)
    # The layers' names and shapes too: code that renamed a layer cannot load the old state.
    layout = settings.fingerprint({key: list(value.shape) for key, value in trainer.model.state_dict().items()})
    keys = {"params_hash": cfg.fingerprint(), "layout": layout}
    # Rank 0 decides and tells the others, so a damaged resume point cannot leave ranks waiting.
    state = world.broadcast(read_resume(resume_path, keys) if resume and world.main else None)
    if state:
        trainer.load_state_dict(state)
    if world.main:
        print(f"train {cfg.name}: {cfg.arch} on {device.describe(trainer.runtime.device)}, {trainer.runtime.dtype}, "
              f"{len(train)} images, {cfg.epochs} epochs"
              + (f", {world.size} processes" if world.size > 1 else "")
              + (f", resuming after epoch {len(trainer.history)}" if state else ""))

    watchers = live.Live(cfg.name, paths.curves(cfg.name)) if world.main else None

    def after_epoch(trainer: training.Trainer) -> None:
        state = trainer.state_dict()  # on every rank: it gathers their generators
        if world.main:
            files.save_torch(resume_path, {**keys, **state})
            # Every epoch, not only at the end, so `dvc plots show`, VS Code and Studio plot a running experiment.
            rows = [log.curve() for log in trainer.history]
            curves.write(paths.curves(cfg.name), rows)
            watchers.epoch_done(len(rows), rows)

    reporter = Reporter(cfg.name, cfg.epochs) if world.main else Silent()
    try:
        with reporter, device.nondeterministic_ops() as nondeterministic:
            trainer.fit(train, val, reporter, on_epoch=after_epoch)
    finally:
        if watchers:
            watchers.close()
    if world.main:
        write_outputs(cfg, trainer, len(train), nondeterministic)
        resume_path.unlink(missing_ok=True)


def read_resume(path, keys: dict[str, str]) -> dict | None:
    """The state an interrupted run of the same params and code left; None if there is none, or it is unusable."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # saved on any device
    except Exception as error:  # a damaged resume point is only a lost shortcut
        print(f"warning: {path}: damaged resume point ({type(error).__name__}); training from the start", file=sys.stderr)
        return None
    if not isinstance(state, dict) or state.get("params_hash") != keys["params_hash"]:
        return None  # other params: they have a run of their own to finish
    if state.get("layout") != keys["layout"]:
        print(f"warning: {path}: resume point from other code (its layers differ); training from the start",
              file=sys.stderr)
        return None
    return state


def write_outputs(cfg: settings.Training, trainer: training.Trainer, images: int, nondeterministic: list[str]) -> None:
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
    files.write_json(paths.timing(cfg.name), timing)


if __name__ == "__main__":
    cli.run(main)
