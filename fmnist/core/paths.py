"""Where every stage reads and writes, relative to the repository root (dvc.yaml declares the same).

Train and evaluate write into `results/<model>/`, which DVC caches, so its run-cache can restore a
model when params come back to values that ran before. Evaluate writes each model's headline
metrics straight into the git-tracked `metrics/`, so what `dvc exp show` lists for a model comes
from that model's own last run, whatever target an experiment stopped at. Summarize publishes the
rest into `plots/` and `reports/`, which git tracks too, so `dvc metrics diff` and `dvc plots diff`
work across commits and pull requests without the cache.
"""

from pathlib import Path

CONFIGS = Path("configs")
DATA_CONFIG = CONFIGS / "data.json"
RAW = Path("data/raw")
PREPARED = Path("data/prepared")
STATS = PREPARED / "stats.json"
RESULTS = Path("results")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")
CURVES = PLOTS / "curves"
ALL_CURVES = PLOTS / "curves.csv"  # every model's, with a `model` column: what dvc.yaml's plots draw
IMAGES = PLOTS / "images"


def train_config(name: str) -> Path:
    """A model's resolved training settings, written by configure; train@<model> depends on it."""
    return CONFIGS / name / "train.json"


def evaluate_config(name: str) -> Path:
    """The settings evaluation reads, written by configure; evaluate@<model> depends on it."""
    return CONFIGS / name / "evaluate.json"


def model(name: str) -> Path:
    return Path("models") / f"{name}.pt"


def export(name: str) -> Path:
    """The model as a torch.export program: uint8 images in, logits out, torch alone to load it."""
    return Path("exports") / f"{name}.pt2"


def models() -> list[str]:
    """The models configure wrote settings for, that is, those params.yaml names."""
    return sorted(path.parent.name for path in CONFIGS.glob("*/train.json"))


def resume(name: str) -> Path:
    """Per-epoch training state, kept outside DVC's outputs so an interrupted run can resume."""
    return Path("models") / f".{name}.resume.pt"


def curves(name: str) -> Path:
    return RESULTS / name / "curves.csv"


def timing(name: str) -> Path:
    return RESULTS / name / "timing.json"


def test_metrics(name: str) -> Path:
    """The headline numbers, which DVC lists as metrics (dvc exp show, dvc metrics diff); git tracks them."""
    return METRICS / f"{name}.json"


def details(name: str) -> Path:
    """Per-class accuracy and the best epoch: published in reports/, out of DVC's metrics columns."""
    return RESULTS / name / "details.json"


def provenance(name: str) -> Path:
    """Params hash, torch version, device, determinism: strings, so kept out of the metrics."""
    return RESULTS / name / "provenance.json"


def confusion(name: str) -> Path:
    return RESULTS / name / "confusion.csv"


def confusion_png(name: str) -> Path:
    return RESULTS / name / "confusion.png"


def predictions_png(name: str) -> Path:
    return RESULTS / name / "predictions.png"


def model_card(name: str) -> Path:
    return REPORTS / "model_cards" / f"{name}.md"


def published(name: str) -> dict[Path, Path]:
    """Each of a model's results and the git-tracked path summarize copies it to."""
    return {
        details(name): REPORTS / "details" / f"{name}.json",
        provenance(name): REPORTS / "provenance" / f"{name}.json",
        timing(name): REPORTS / "timing" / f"{name}.json",
        curves(name): CURVES / f"{name}.csv",
        confusion(name): PLOTS / "confusion" / f"{name}.csv",
        confusion_png(name): IMAGES / f"{name}_confusion.png",
        predictions_png(name): IMAGES / f"{name}_predictions.png",
    }
