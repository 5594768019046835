"""Classify a user's own pictures with a trained model, run exactly as the evaluate stage runs it."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fmnist.core import paths, settings
from fmnist.core.errors import FmnistError
from fmnist.data import splits
from fmnist.model import checkpoint, determinism, inference
from fmnist.params import parse
from fmnist.predict import images

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
    except (OSError, ValueError):
        rows = None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) and "model" in row for row in rows):
        raise ModelError(
            f"{leaderboard}: no leaderboard to pick the best model from; name one with --model NAME (or run: dvc repro)"
        )
    scored = [row for row in rows if isinstance(row.get("best_val_accuracy"), float)]
    if not scored:
        raise ModelError(f"{leaderboard}: trained without a validation split (val_size: 0); name one with --model NAME")
    return max(scored, key=lambda row: row["best_val_accuracy"])["model"]


def load(name: str | None) -> Classifier:
    """The trained model (None: the leaderboard's best) with the precision and test-time views
    evaluate uses (its configs/ files where configure wrote them, else the declared defaults)."""
    default = name is None
    name = best_model() if default else name
    path = paths.model(name)
    valid = bool(parse.MODEL_NAME.fullmatch(name))  # so a name is never a path
    if not valid or not path.is_file():
        listed = valid and name in parse.load().models
        raise ModelError(missing_model(name, path, listed, default))
    model, saved = checkpoint.load(path)
    recipe_file, evaluation_file = paths.train_config(name), paths.evaluate_config(name)
    recipe = settings.Recipe.read(recipe_file) if recipe_file.is_file() else None
    evaluation = settings.Evaluation.read(evaluation_file) if evaluation_file.is_file() else settings.Evaluation()

    trained = recipe or settings.Globals()  # the declared defaults, for a model without its settings
    runtime = inference.Runtime.create("auto", trained.precision, saved["arch"])
    determinism.make_deterministic(trained.seed)
    return Classifier(name, runtime.place(model), runtime, trained.eval_batch_size, evaluation.tta_views)


def missing_model(name: str, path: Path, listed: bool, default: bool) -> str:
    trained = sorted(p.stem for p in MODELS.glob("*.pt") if parse.MODEL_NAME.fullmatch(p.stem))
    others = f"; or pick a trained one with --model ({', '.join(trained)})" if trained else ""
    which = f"the default model '{name}' (best on {LEADERBOARD})" if default else f"model '{name}'"
    if listed:
        return (
            f"{path}: {which} is not trained yet; train it with: dvc repro train@{name} (or fetch it: dvc pull){others}"
        )
    known = ", ".join(parse.load().models)
    return (
        f"{path}: unknown model '{name}' (params.yaml has: {known}); "
        f"train one with: dvc repro train@NAME (or fetch trained ones: dvc pull){others}"
    )


def probabilities(classifier: Classifier, batch: torch.Tensor) -> torch.Tensor:
    """Class probabilities for uint8 N x 1 x 28 x 28 images, on the CPU."""
    logits = inference.predict(
        classifier.model,
        batch.to(classifier.runtime.device),
        classifier.runtime,
        classifier.batch_size,
        classifier.tta_views,
    )
    return logits.softmax(1).cpu()


def classify(
    classifier: Classifier, converted: list[tuple[Path, torch.Tensor, images.Conversion]], top: int
) -> list[Prediction]:
    if not converted:
        return []
    batch = torch.stack([image for _, image, _ in converted]).unsqueeze(1)
    chances, classes = probabilities(classifier, batch).topk(top, dim=1)
    return [
        Prediction(
            file,
            image,
            conversion,
            [(splits.CLASSES[c], p) for c, p in zip(row_classes.tolist(), row_chances.tolist())],
        )
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
        guesses = Text("\n").join(
            Text(f"{name} {p:.1%}", style="bold" if rank == 0 else "") for rank, (name, p) in enumerate(prediction.top)
        )
        grid.add_row(Text(str(prediction.file)), guesses, prediction.conversion.describe())  # Text: no markup
    return grid


def draw_grid(predictions: list[Prediction], total: int, model: str, path: Path) -> None:
    """The pictures as the model saw them (light on black, 28 x 28), each with its top class."""
    from fmnist.report import plots

    shown = f", first {len(predictions)} of {total}" if total > len(predictions) else ""
    titled = [(p.image, f"{short(p.file.name)}\n{p.top[0][0]} {p.top[0][1]:.0%}") for p in predictions]
    plots.picture_grid(titled, f"{model}: the pictures as the model saw them{shown}", path)


def short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."
