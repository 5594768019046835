"""Stage evaluate@<model>: test-set metrics, a per-image confusion CSV and two PNGs for one model,
and the model as exports/<model>.pt2, loadable with torch alone:

import torch
model = torch.export.load("exports/cnn.pt2").module()
logits = model(images)            # uint8 N x 1 x 28 x 28; normalisation and test-time views inside

The export is written here rather than by a stage of its own: a process per model spent seconds
importing torch before any work.
"""

import argparse
import io
import math
import re

import torch

from fmnist.core import cli, files, paths, settings
from fmnist.data import splits
from fmnist.model import checkpoint, determinism, device, inference, models
from fmnist.report import export, metrics, plots

GRID_IMAGES = 32  # test images shown in the predictions picture, half of them mistakes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    name = parser.parse_args().model
    recipe = settings.Recipe.read(paths.train_config(name))
    views = settings.Evaluation.read(paths.evaluate_config(name)).tta_views
    device.check_machine(recipe)
    model, saved = checkpoint.load(paths.model(name))
    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    determinism.make_deterministic(recipe.seed)
    test = splits.load_split(paths.PREPARED, "test")

    model = runtime.place(model)
    with determinism.nondeterministic_ops() as nondeterministic:
        images = test.images.to(runtime.device)
        logits = inference.predict(model, images, runtime, recipe.eval_batch_size, views).cpu()
    predicted = logits.argmax(1)
    counts = metrics.confusion(test.labels, predicted, len(splits.CLASSES))
    headline = {
        "test_accuracy": round(metrics.accuracy(counts), 6),
        "test_loss": round(torch.nn.functional.cross_entropy(logits, test.labels).item(), 6),
        "test_macro_f1": round(metrics.macro_f1(counts), 6),
    }
    if math.isfinite(saved["best_val_accuracy"]):  # NaN: trained without a validation split (val_size: 0)
        headline["best_val_accuracy"] = round(saved["best_val_accuracy"], 6)
    files.write_json(paths.test_metrics(name), headline)
    per_class = metrics.per_class_accuracy(counts)
    files.write_json(
        paths.details(name),
        {
            "best_epoch": saved["best_epoch"],
            **{f"accuracy_{slug(label)}": round(acc, 6) for label, acc in zip(splits.CLASSES, per_class)},
        },
    )
    ops = sorted({*saved["nondeterministic"], *nondeterministic})
    files.write_json(
        paths.provenance(name),
        {
            "recipe": recipe.fingerprint(),
            "torch_version": torch.__version__,
            "device": determinism.describe(runtime.device),
            # What made these numbers: the pull-request report compares runs of one machine kind and dtype.
            "machine": made_on(saved.get("machine", "unknown"), determinism.machine(runtime.device, runtime.dtype)),
            "dtype": str(runtime.dtype),
            "determinism": determinism.promise(runtime.device, ops),
            **models.size(model),
        },
    )
    write_pictures(name, test, predicted, counts, headline["test_accuracy"])
    write_export(name, views)
    print(f"evaluate {name}: test accuracy {headline['test_accuracy']:.4f}, macro-F1 {headline['test_macro_f1']:.4f}")


def write_pictures(name: str, test: splits.Split, predicted: torch.Tensor, counts: torch.Tensor, accuracy: float):
    rows = [(splits.CLASSES[a], splits.CLASSES[p]) for a, p in zip(test.labels.tolist(), predicted.tolist())]
    files.write_csv(paths.confusion(name), ("actual", "predicted"), rows)
    title = f"{name}: test accuracy {accuracy:.4f}"
    plots.confusion_matrix(counts, splits.CLASSES, title, paths.confusion_png(name))
    shown = grid_sample(test.labels, predicted)
    plots.prediction_grid(
        test.images[shown], test.labels[shown], predicted[shown], splits.CLASSES, title, paths.predictions_png(name)
    )


def write_export(name: str, views: int) -> None:
    model, _ = checkpoint.load(paths.model(name))  # as saved: evaluation may have moved it to a GPU or channels-last
    buffer = io.BytesIO()  # through memory, as files.save_torch does, so the archive never names a temporary file
    torch.export.save(export.program(model, views), buffer)
    files.write_bytes(paths.export(name), buffer.getvalue())


def made_on(trained: str, evaluated: str) -> str:
    return trained if trained == evaluated else f"{trained}; evaluated on {evaluated}"


def slug(class_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", class_name.lower())


def grid_sample(actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """The first test images right and wrong, half each (fewer wrong if the model rarely errs)."""
    wrong = (actual != predicted).nonzero().flatten()[: GRID_IMAGES // 2]
    right = (actual == predicted).nonzero().flatten()[: GRID_IMAGES - len(wrong)]
    return torch.cat([right, wrong]).sort().values


if __name__ == "__main__":
    cli.run(main)
