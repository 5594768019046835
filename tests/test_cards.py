"""Model cards from the pipeline's own files."""

from dataclasses import asdict

from fmnist.params import parse
from fmnist.report import cards
from stages.evaluate import slug

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
STATS = {"class_counts": {split: dict.fromkeys(CLASSES, n) for split, n in (("train", 50), ("val", 10), ("test", 10))}}
MODEL = {"arch": "mlp", "hidden": [8], "optimizer": "adam", "lr": 0.001, "augment": {"flip": True}, "tta_views": 2}
CONFIGURED = parse.parse({"batch_size": 64, "epochs": 2, "models": {"m": MODEL}}).models["m"]
METRICS = {
    "test_accuracy": 0.5,
    "test_loss": 1.2,
    "test_macro_f1": 0.45,
    "best_val_accuracy": 0.55,
    "best_epoch": 2,
    **{f"accuracy_{slug(name)}": i / 10 for i, name in enumerate(CLASSES)},  # as evaluate writes them
}
PROVENANCE = {
    "determinism": "bitwise: same params, same machine, same numbers",
    "torch_version": "2",
    "device": "cpu",
    "parameters": 6370,
    "multiply_adds": 6352,
}


def test_a_card_holds_data_size_recipe_results_and_limits():
    confusions = [("Shirt", "T-shirt/top")] * 3 + [("Coat", "Pullover")] * 2 + [("Bag", "Bag")] * 95
    text = cards.card(
        "m", asdict(CONFIGURED.recipe), asdict(CONFIGURED.evaluation), METRICS, PROVENANCE, STATS, confusions
    )
    assert "Trained on 500 images" in text and "10 classes" in text
    assert "6,370 parameters, 0.01 M multiply-adds per image; 2 test-time view(s)" in text
    assert "| optimizer | adam |" in text
    assert "| augment | flip true |" in text  # the augmentations in use, not every key at 0
    assert "Test accuracy **0.5000**" in text and "| Shirt | 0.6000 |" in text and "| Ankle boot | 0.9000 |" in text
    assert "Shirt -> T-shirt/top 3; Coat -> Pullover 2." in text
    assert text.count("bitwise") == 1
