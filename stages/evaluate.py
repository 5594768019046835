"""Stage evaluate@<model>: test-set metrics, a per-image confusion CSV and two PNGs for one model."""

import argparse
import re

import torch

from fmnist import checkpoint, cli, data, device, files, inference, metrics, models, paths, plots, settings

GRID_IMAGES = 32  # test images shown in the predictions picture, half of them mistakes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    name = parser.parse_args().model
    cfg = settings.read_current(settings.Evaluation, paths.evaluate_config(name), name)
    device.check_machine(cfg)
    model, saved = checkpoint.load(paths.model(cfg.name))
    norm = saved["normalization"]
    runtime = inference.Runtime.create(cfg, norm["mean"], norm["std"])
    device.make_deterministic(cfg.seed)
    test = data.load_split(paths.PREPARED, "test")

    model = runtime.place(model)
    with device.nondeterministic_ops() as nondeterministic:
        logits = inference.predict(model, test.images.to(runtime.device), runtime, cfg.eval_batch_size, cfg.tta_views).cpu()
    predicted = logits.argmax(1)
    counts = metrics.confusion(test.labels, predicted, len(data.CLASSES))
    loss = torch.nn.functional.cross_entropy(logits, test.labels).item()

    result = {
        "test_accuracy": round(metrics.accuracy(counts), 6),
        "test_loss": round(loss, 6),
        "test_macro_f1": round(metrics.macro_f1(counts), 6),
        "best_val_accuracy": round(saved["best_val_accuracy"], 6),
        "best_epoch": saved["best_epoch"],
        **{f"accuracy_{slug(name)}": round(acc, 6) for name, acc in zip(data.CLASSES, metrics.per_class_accuracy(counts))},
    }
    files.write_json(paths.test_metrics(cfg.name), result)
    files.write_json(paths.provenance(cfg.name), {
        "params_hash": cfg.params_hash,
        "torch_version": torch.__version__,
        "device": device.describe(runtime.device),
        "determinism": device.determinism(runtime.device, sorted({*saved.get("nondeterministic", []), *nondeterministic})),
        **models.size(model),
    })
    files.write_csv(paths.confusion(cfg.name), ("actual", "predicted"),
                 [(data.CLASSES[a], data.CLASSES[p]) for a, p in zip(test.labels.tolist(), predicted.tolist())])
    title = f"{cfg.name}: test accuracy {result['test_accuracy']:.4f}"
    plots.confusion_matrix(counts, data.CLASSES, title, paths.confusion_png(cfg.name))
    shown = grid_sample(test.labels, predicted)
    plots.prediction_grid(test.images[shown], test.labels[shown], predicted[shown], data.CLASSES, title, paths.predictions_png(cfg.name))
    print(f"evaluate {cfg.name}: test accuracy {result['test_accuracy']:.4f}, macro-F1 {result['test_macro_f1']:.4f}")


def slug(class_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", class_name.lower())


def grid_sample(actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """The first test images right and wrong, half each (fewer wrong if the model rarely errs)."""
    wrong = (actual != predicted).nonzero().flatten()[: GRID_IMAGES // 2]
    right = (actual == predicted).nonzero().flatten()[: GRID_IMAGES - len(wrong)]
    return torch.cat([right, wrong]).sort().values


if __name__ == "__main__":
    cli.run(main)
