"""Classify a user's own pictures with a trained model, run exactly as the evaluate stage runs it."""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from fmnist import checkpoint, config, data, device, images, inference, paths, settings
from fmnist.errors import FmnistError

LEADERBOARD = paths.REPORTS / "leaderboard.json"
MODELS = paths.model("name").parent


class ModelError(FmnistError):
    """No usable model: unknown, not trained yet, or no leaderboard to pick the default from."""


@dataclass(frozen=True)
class Classifier:
    name: str
    model: nn.Module
    runtime: inference.Runtime
    batch_size: int
    tta_views: int


@dataclass(frozen=True)
class Prediction:
    file: Path
    image: torch.Tensor  # uint8 28 x 28, as the model saw it
    conversion: images.Conversion
    top: list[tuple[str, float]]  # (class, probability), most likely first


def best_model(leaderboard: Path = LEADERBOARD) -> str:
    """The committed leaderboard's model with the best validation accuracy (the first such row):
    choosing by test accuracy would make the test set part of the model selection."""
    try:
        rows = json.loads(leaderboard.read_text())
        return max(rows, key=lambda row: row["best_val_accuracy"])["model"]
    except (OSError, ValueError, LookupError, TypeError):
        raise ModelError(f"{leaderboard}: no leaderboard to pick the best model from; "
                         "name one with --model NAME (or run: dvc repro)") from None


def load(name: str | None) -> Classifier:
    """The trained model (None: the leaderboard's best) with the device, precision,
    normalisation and test-time augmentation evaluate uses."""
    default = name is None
    name = best_model() if default else name
    path = paths.model(name)
    valid = bool(config.MODEL_NAME.fullmatch(name))  # so a name is never a path
    if not valid or not path.is_file():
        listed = valid and name in config.load().models
        raise ModelError(missing_model(name, path, listed, default))
    model, saved = checkpoint.load(path)
    cfg = replace(evaluation(name, saved["arch"]), device="auto")
    norm = saved["normalization"]
    runtime = inference.Runtime.create(cfg, norm["mean"], norm["std"])
    device.make_deterministic(cfg.seed)
    return Classifier(name, runtime.place(model), runtime, cfg.eval_batch_size, cfg.tta_views)


def evaluation(name: str, arch: str) -> settings.Evaluation:
    """How evaluate runs the model: configure's file where there is one, else the declared defaults."""
    path = paths.evaluate_config(name)
    if path.is_file():
        return settings.Evaluation.read(path)
    return config.parse({"models": {name: {"arch": arch, "lr": 1.0}}}).models[name].evaluation  # lr is unused here


def missing_model(name: str, path: Path, listed: bool, default: bool) -> str:
    trained = sorted(p.stem for p in MODELS.glob("*.pt") if config.MODEL_NAME.fullmatch(p.stem))
    others = f"; or pick a trained one with --model ({', '.join(trained)})" if trained else ""
    which = f"the default model '{name}' (best on {LEADERBOARD})" if default else f"model '{name}'"
    if listed:
        return f"{path}: {which} is not trained yet; train it with: dvc repro train@{name} (or fetch it: dvc pull){others}"
    known = ", ".join(config.load().models)
    return (f"{path}: unknown model '{name}' (params.yaml has: {known}); "
            f"train one with: dvc repro train@NAME (or fetch trained ones: dvc pull){others}")


def probabilities(classifier: Classifier, batch: torch.Tensor) -> torch.Tensor:
    """Class probabilities for uint8 N x 1 x 28 x 28 images, on the CPU."""
    logits = inference.predict(classifier.model, batch.to(classifier.runtime.device), classifier.runtime,
                            classifier.batch_size, classifier.tta_views)
    return logits.softmax(1).cpu()


def classify(classifier: Classifier, converted: list[tuple[Path, torch.Tensor, images.Conversion]],
             top: int) -> list[Prediction]:
    if not converted:
        return []
    batch = torch.stack([image for _, image, _ in converted]).unsqueeze(1)
    chances, classes = probabilities(classifier, batch).topk(top, dim=1)
    return [
        Prediction(file, image, conversion,
                   [(data.CLASSES[c], p) for c, p in zip(row_classes.tolist(), row_chances.tolist())])
        for (file, image, conversion), row_classes, row_chances in zip(converted, classes, chances)
    ]


def as_json(prediction: Prediction, model: str) -> dict:
    conversion = prediction.conversion
    return {
        "file": str(prediction.file),
        "model": model,
        "top": [{"class": name, "probability": round(p, 6)} for name, p in prediction.top],
        "inverted": conversion.inverted,
        "size": list(conversion.size),
        "trimmed": list(conversion.trimmed) if conversion.trimmed else None,
    }


def table(predictions: list[Prediction], model: str, top: int):
    """A rich table: each file, its most likely classes (one a line) and what the conversion did."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=f"{model} predictions")
    grid.add_column("file", overflow="fold")
    grid.add_column(f"top {top}" if top > 1 else "class", no_wrap=True)
    grid.add_column("conversion")
    for prediction in predictions:
        guesses = Text("\n").join(Text(f"{name} {p:.1%}", style="bold" if rank == 0 else "")
                                  for rank, (name, p) in enumerate(prediction.top))
        grid.add_row(Text(str(prediction.file)), guesses, prediction.conversion.describe())  # Text: no markup
    return grid


def draw_grid(predictions: list[Prediction], total: int, model: str, path: Path, columns: int = 8) -> None:
    """The pictures as the model saw them (light on black, 28 x 28), each with its top class.

    Here rather than in plots.py: evaluate and summarize depend on plots.py in dvc.yaml, and a
    change there would rerun them.
    """
    from fmnist import files
    from fmnist.plots import plt  # pyplot on the Agg backend, with the project's fixed settings

    columns = min(columns, len(predictions))
    rows = (len(predictions) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, prediction in zip(axes.flat, predictions):
        ax.imshow(prediction.image.numpy(), cmap="gray", vmin=0, vmax=255)
        name, chance = prediction.top[0]
        ax.set_title(f"{short(prediction.file.name)}\n{name} {chance:.0%}", fontsize=7)
    shown = f", first {len(predictions)} of {total}" if total > len(predictions) else ""
    figure.suptitle(f"{model}: the pictures as the model saw them{shown}")
    figure.tight_layout()
    files.save_figure(path, figure)
    plt.close(figure)


def short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."
