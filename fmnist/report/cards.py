"""Model cards: one Markdown page per model, written by summarize from what the pipeline produced."""

from collections import Counter

CONFUSABLE = ("T-shirt/top", "Pullover", "Coat", "Shirt")  # upper-body garments, alike at 28 x 28
RECIPE_KEYS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "epochs",
    "scheduler",
    "warmup",
    "label_smoothing",
    "lookahead",
    "augment",
    "seed",
    "precision",
)


def card(
    name: str,
    training: dict,
    evaluation: dict,
    metrics: dict,
    provenance: dict,
    stats: dict,
    confusions: list[tuple[str, str]],
) -> str:
    """`training`/`evaluation`: configure's files; `metrics`, `provenance`: evaluate's;
    `stats`: prepare's; `confusions`: (actual, predicted) per test image."""
    counts = {split: sum(classes.values()) for split, classes in stats["class_counts"].items()}
    lines = [
        f"# {name}",
        "",
        "## Data",
        f"Fashion-MNIST (Zalando): 28 x 28 greyscale, 10 classes. Trained on {counts['train']:,} images; the weights",
        f"kept are those of the best epoch on {counts['val']:,} validation images (a stratified split of the official",
        f"training set, seed in params.yaml); tested once on the official {counts['test']:,} test images.",
        "",
        "## Model",
        f"`{training['arch']}` with {format_options(training['options'])}: {provenance['parameters']:,} parameters, "
        f"{provenance['multiply_adds'] / 1e6:.2f} M multiply-adds per image; "
        f"{evaluation['tta_views']} test-time view(s) averaged.",
        "",
        "## Recipe",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {format_value(training[key])} |" for key in RECIPE_KEYS),
        "",
        "## Results",
        f"Test accuracy **{metrics['test_accuracy']:.4f}**, macro-F1 {metrics['test_macro_f1']:.4f}, test loss "
        f"{metrics['test_loss']:.4f}. {validation(metrics)}",
        "",
        "| class | test accuracy |",
        "|---|---|",
        *(f"| {label} | {metrics[key]:.4f} |" for label, key in per_class(metrics, stats)),
        "",
        "Seeds: this pipeline trains one seed per model; the spread over seeds is in docs/results.md.",
        "",
        "## Reproducibility and limits",
        f"{provenance['determinism']} (torch {provenance['torch_version']}, {provenance['device']}).",
        "",
        f"Most frequent confusions (actual -> predicted, of {len(confusions):,} test images): "
        + "; ".join(f"{a} -> {p} {n}" for (a, p), n in most_confused(confusions))
        + ".",
        f"A known limit of Fashion-MNIST: the upper-body garments ({', '.join(CONFUSABLE)}) differ in details",
        "(collars, buttons, sleeves) that 28 x 28 pixels barely hold, so most errors fall among them.",
    ]
    return "\n".join(lines) + "\n"


def validation(metrics: dict) -> str:
    if "best_val_accuracy" not in metrics:
        return f"No validation split (val_size: 0): the last epoch's weights (epoch {metrics['best_epoch']})."
    return f"Validation accuracy {metrics['best_val_accuracy']:.4f} (epoch {metrics['best_epoch']}, one view)."


def per_class(metrics: dict, stats: dict) -> list[tuple[str, str]]:
    """(class name, metrics key) in class order: both files list the classes in the dataset's order."""
    keys = [key for key in metrics if key.startswith("accuracy_")]
    return list(zip(stats["class_counts"]["test"], keys, strict=True))


def most_confused(confusions: list[tuple[str, str]], top: int = 3) -> list[tuple[tuple[str, str], int]]:
    wrong = Counter((actual, predicted) for actual, predicted in confusions if actual != predicted)
    return sorted(wrong.items(), key=lambda item: (-item[1], item[0]))[:top]


def format_options(options: dict) -> str:
    return ", ".join(f"{key} {format_value(value)}" for key, value in options.items()) or "no options"


def format_value(value) -> str:
    if isinstance(value, dict):  # augment: only the augmentations in use
        return ", ".join(f"{key} {format_value(v)}" for key, v in value.items() if v) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)
