"""Stage train@<model>: fit one model from configs/<model>/train.json; save best-validation weights and curves."""

import argparse
import sys

import torch

from fmnist.core import cli, curves, files, paths, settings
from fmnist.data import splits
from fmnist.model import checkpoint, determinism, device, inference
from fmnist.train import distributed, live, training
from fmnist.train.progress import Reporter, Silent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved resume point")
    args = parser.parse_args()
    recipe = settings.Recipe.read(paths.train_config(args.model))
    device.check_machine(recipe, recipe.nproc)
    data = splits.load_training(paths.PREPARED)
    splits.check_size(recipe.key("train_subset"), recipe.train_subset, len(data.train))
    if recipe.nproc > 1 and not distributed.launched():
        # Checked above, once, so a bad parameter or damaged data is one line here and not one per rank.
        sys.exit(distributed.launch(recipe.nproc, "stages.train", sys.argv[1:]))

    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    with distributed.world(runtime.device) as world:
        check_batch(recipe, world, len(data.train))
        resume_path = paths.resume(recipe.name)
        # Rank 0 decides and tells the others, so a damaged resume point cannot leave ranks waiting.
        state = world.broadcast(read_resume(resume_path, recipe) if world.main and not args.fresh else None)
        watchers = live.Live(recipe.name, paths.curves(recipe.name)) if world.main else None
        reporter = Reporter(recipe.name, recipe.epochs) if world.main else Silent()
        if world.main:
            announce(recipe, runtime, world, len(data.train), state)

        def after_epoch(trainer: training.Trainer) -> None:
            state = trainer.state_dict()  # on every rank: it gathers their generators
            if world.main:
                files.save_torch(resume_path, {"recipe": recipe.fingerprint(), **state})
                # Every epoch, not only at the end, so `dvc plots show`, VS Code and Studio plot a running experiment.
                rows = [log.curve() for log in trainer.history]
                curves.write(paths.curves(recipe.name), rows)
                watchers.epoch_done(len(rows), rows)

        try:
            with reporter, determinism.nondeterministic_ops() as nondeterministic:
                trainer = training.run(
                    recipe, data, world=world, reporter=reporter, on_epoch=after_epoch, resume=state, runtime=runtime
                )
        finally:
            if watchers:
                watchers.close()
        if world.main:
            write_outputs(recipe, trainer, nondeterministic)
            resume_path.unlink(missing_ok=True)


def check_batch(recipe: settings.Recipe, world: distributed.World, train_images: int) -> None:
    if recipe.batch_size % world.size:  # a launch by hand (torchrun on several nodes) may differ from nproc
        raise recipe.refuse("batch_size", f"must be a multiple of the {world.size} processes")
    images = min(recipe.train_subset or train_images, train_images)
    per_process = min(recipe.batch_size, images) // world.size
    if per_process < 2:  # batch norm in training mode needs two values per channel
        raise recipe.refuse(
            "train_subset" if recipe.train_subset else "batch_size",
            f"leaves {per_process} image(s) per batch and process; at least 2 are needed",
        )


def announce(recipe, runtime, world, images: int, state: dict | None) -> None:
    print(
        f"train {recipe.name}: {recipe.arch} on {determinism.describe(runtime.device)}, {runtime.dtype}, "
        f"{images} images, {recipe.epochs} epochs"
        + (f", {world.size} processes" if world.size > 1 else "")
        + (f", a resume point after epoch {len(state['history'])}" if state else "")
    )


def read_resume(path, recipe: settings.Recipe) -> dict | None:
    """The state an interrupted run of the same recipe left; None if there is none, or it is unusable."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # saved on any device
    except Exception as error:  # a damaged resume point is only a lost shortcut
        print(
            f"warning: {path}: damaged resume point ({type(error).__name__}); training from the start", file=sys.stderr
        )
        return None
    if not isinstance(state, dict) or state.get("recipe") != recipe.fingerprint():
        return None  # another recipe's: it has a run of its own to finish
    return state


def write_outputs(recipe: settings.Recipe, trainer: training.Trainer, nondeterministic: list[str]) -> None:
    history = trainer.history
    best = trainer.best_epoch()
    checkpoint.save(
        paths.model(recipe.name),
        trainer.best_state,
        recipe.arch,
        recipe.options,
        best.epoch,
        best.val_accuracy,
        nondeterministic,
        determinism.machine(trainer.runtime.device, trainer.runtime.dtype),
    )
    # Summed per epoch (validation included), so a resumed run reports its whole training time.
    seconds = sum(log.seconds for log in history)
    timing = {
        "train_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / len(history), 3),
        "train_images_per_second": round(len(trainer.train) * len(history) / seconds, 1),
        "processes": trainer.world.size,
    }
    if trainer.runtime.device.type == "cuda":
        timing["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(trainer.runtime.device) / 2**20, 1)
    files.write_json(paths.timing(recipe.name), timing)


if __name__ == "__main__":
    cli.run(main)
