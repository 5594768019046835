"""`python -m fmnist predict` on pictures as users have them, with a model trained here in seconds."""

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image

from fmnist.core import files, paths, settings
from fmnist.data import idx, sources
from fmnist.data import splits as data
from fmnist.model import checkpoint, determinism, device, inference, models
from fmnist.params import parse
from fmnist.predict import images
from fmnist.predict import predict as predicting
from fmnist.train import training
from tests import project, synthetic

REAL = (sources.DEBIAN_DIR / idx.TEST_IMAGES.gz_name).is_file()
PARAMS = {
    "device": "auto",
    "models": {
        "tiny": {
            "arch": "mlp",
            "hidden": [128, 64],
            "optimizer": "adam",
            "lr": 0.002,
            "epochs": 3,
            "augment": {"flip": True},
            "tta_views": 2,
        }
    },
}
# A model trained in the module's fixture, and the command in processes of its own.
e2e = pytest.mark.e2e


def write_configs(project_dir, name: str, model: parse.ModelSettings) -> None:
    """configs/<name>/*.json, as configure writes them."""
    files.write_json(project_dir / paths.train_config(name), asdict(model.recipe))
    files.write_json(project_dir / paths.evaluate_config(name), asdict(model.evaluation))


@pytest.fixture
def untrained(tmp_path, monkeypatch):
    """A project directory holding an untrained mlp's checkpoint and nothing else."""
    checkpoint.save(
        tmp_path / paths.model("m"),
        models.build("mlp", {"hidden": [8], "dropout": 0.0}).state_dict(),
        "mlp",
        {"hidden": [8], "dropout": 0.0},
        1,
        0.1,
        [],
        "test",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_model_without_configs_runs_with_the_declared_defaults(untrained):
    classifier = predicting.load("m")
    defaults = settings.Globals()
    assert classifier.tta_views == settings.Evaluation().tta_views
    assert classifier.batch_size == defaults.eval_batch_size
    assert classifier.runtime.dtype == device.resolve_precision(defaults.precision, classifier.runtime.device)


def test_a_model_with_configs_runs_as_they_say(untrained):
    configured = parse.parse({"models": {"m": {"arch": "mlp", "lr": 0.1, "hidden": [8]}}}).models["m"]
    changed = replace(
        configured,
        recipe=replace(configured.recipe, eval_batch_size=64, precision="fp32"),
        evaluation=settings.Evaluation(tta_views=6),
    )
    assert changed.recipe.eval_batch_size != settings.Globals().eval_batch_size
    write_configs(untrained, "m", changed)
    classifier = predicting.load("m")
    assert (classifier.batch_size, classifier.runtime.dtype, classifier.tta_views) == (64, torch.float32, 6)


def real_or_synthetic() -> tuple[data.Split, data.Split]:
    """Real Fashion-MNIST (Debian's package, as CI installs it), else the synthetic stand-in."""
    if not REAL:
        return data.Split(*synthetic.images_and_labels(3000, seed=1)), data.Split(
            *synthetic.images_and_labels(1000, seed=2)
        )
    read = lambda file: idx.read(sources.DEBIAN_DIR / file.gz_name)  # noqa: E731
    train = data.Split(read(idx.TRAIN_IMAGES), read(idx.TRAIN_LABELS).long())
    test = data.Split(read(idx.TEST_IMAGES), read(idx.TEST_LABELS).long())
    return train.take(data.stratified_indices(train.labels, 10000, 0)[0]), test


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A project directory holding one trained model, its configs and a leaderboard naming it best
    on validation, below an untrained model listed first (as if best on test)."""
    path = tmp_path_factory.mktemp("repo")
    train, test = real_or_synthetic()
    train, test = (data.Split(s.images.reshape(-1, 1, 28, 28), s.labels.long()) for s in (train, test))
    configured = parse.parse(PARAMS).models["tiny"]
    recipe = configured.recipe
    pixels = train.images.double() / 255
    splits = data.Splits(train, test.take(torch.arange(1000)), pixels.mean().item(), pixels.std().item())
    trainer = training.run(recipe, splits)
    best = max(trainer.history, key=lambda log: log.val_accuracy)  # the first best, as the train stage keeps
    checkpoint.save(
        path / paths.model("tiny"),
        trainer.best_state,
        recipe.arch,
        recipe.options,
        best.epoch,
        best.val_accuracy,
        [],
        "test",
    )
    (path / "params.yaml").write_text(
        yaml.safe_dump(PARAMS | {"models": PARAMS["models"] | {"untrained": {"arch": "logreg", "lr": 0.01}}})
    )
    write_configs(path, "tiny", configured)
    (path / "reports").mkdir()
    (path / "reports" / "leaderboard.json").write_text(
        json.dumps([{"model": "untrained", "best_val_accuracy": 0.5}, {"model": "tiny", "best_val_accuracy": 0.9}])
    )
    return SimpleNamespace(path=path, test=test)


def predict(repo, *args, check=True):
    # Wide enough that rich never wraps a long temporary path inside the table's file column.
    env = project.environment() | {"PYTHONPATH": str(project.ROOT), "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-m", "fmnist", "predict", *map(str, args)],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def json_lines(result) -> dict[str, dict]:
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {os.path.basename(row["file"]): row for row in rows}


def evaluate_probabilities(repo, images_: torch.Tensor) -> torch.Tensor:
    """What stages/evaluate.py computes for these images, as probabilities."""
    recipe = settings.Recipe.read(repo.path / paths.train_config("tiny"))
    views = settings.Evaluation.read(repo.path / paths.evaluate_config("tiny")).tta_views
    model, _ = checkpoint.load(repo.path / paths.model("tiny"))
    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    determinism.make_deterministic(recipe.seed)
    model = runtime.place(model)
    logits = inference.predict(model, images_.to(runtime.device), runtime, recipe.eval_batch_size, views)
    return logits.softmax(1).cpu()


def shop_picture(image: torch.Tensor) -> Image.Image:
    """A test image as a shop shows it: dark on white, 112 x 112 (bilinear), RGB."""
    return Image.fromarray((255 - image.reshape(28, 28)).numpy()).resize((112, 112), Image.BILINEAR).convert("RGB")


@e2e
@pytest.mark.skipif(not REAL, reason="needs Debian's dataset-fashion-mnist (real pictures to convert)")
def test_round_trip_through_shop_style_files_keeps_accuracy(repo, tmp_path):
    test = repo.test.take(data.stratified_indices(repo.test.labels, 500, seed=0)[0])
    for i, image in enumerate(test.images):
        picture = shop_picture(image)
        if i % 2:
            picture.save(tmp_path / f"{i:03d}.jpg", quality=90)
        else:
            picture.save(tmp_path / f"{i:03d}.png")
    rows = json_lines(predict(repo, "--json", tmp_path))
    assert len(rows) == 500 and all(row["inverted"] for row in rows.values())
    predicted = torch.tensor([data.CLASSES.index(rows[name]["top"][0]["class"]) for name in sorted(rows)])
    through_files = (predicted == test.labels).float().mean().item()
    originals = (evaluate_probabilities(repo, test.images).argmax(1) == test.labels).float().mean().item()
    print(f"accuracy on 500 originals {originals:.3f}, through shop-style files {through_files:.3f}")
    assert originals > 0.75  # the model has learned something, so the comparison means something
    assert abs(through_files - originals) <= 0.015


@e2e
def test_28x28_light_on_black_passes_through_and_is_predicted_as_evaluate_does(repo, tmp_path):
    test = repo.test.take(torch.arange(40))
    for i, image in enumerate(test.images):
        Image.fromarray(image.reshape(28, 28).numpy()).save(tmp_path / f"{i:02d}.png")
        seen, conversion = images.load(tmp_path / f"{i:02d}.png")
        assert torch.equal(seen, image.reshape(28, 28)) and conversion.trimmed is None and not conversion.inverted
    rows = json_lines(predict(repo, "--json", "--top", "10", tmp_path))
    expected = evaluate_probabilities(repo, test.images)
    for i, want in enumerate(expected):
        got = {entry["class"]: entry["probability"] for entry in rows[f"{i:02d}.png"]["top"]}
        assert rows[f"{i:02d}.png"]["top"][0]["class"] == data.CLASSES[want.argmax()]
        assert torch.allclose(torch.tensor([got[name] for name in data.CLASSES]), want, atol=2e-6)


def assert_error_lines(result, expected: dict[str, str]):
    """One `error: PATH: why` line per bad file, each naming its file and reason."""
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected), result.stderr
    for line, (path, why) in zip(lines, expected.items()):
        assert line.startswith(f"error: {path}: ") and why in line, line


@e2e
def test_bad_files_get_one_line_each_and_the_good_ones_are_still_predicted(repo, tmp_path):
    shop_picture(repo.test.images[0]).save(tmp_path / "good.png")
    whole = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.txt").write_text("a shopping list, not a picture\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "no-pictures").mkdir()
    (tmp_path / "no-pictures" / "readme.txt").write_text("nothing here\n")
    shop_picture(repo.test.images[0]).convert("LAB").save(tmp_path / "lab.tif")  # Pillow reads it, but not into grey
    shop_picture(repo.test.images[1]).save(tmp_path / "also-good.jpg")
    names = [
        "good.png",
        "truncated.png",
        "notes.txt",
        "empty.png",
        "no-pictures",
        "missing.png",
        "lab.tif",
        "also-good.jpg",
    ]
    expected = {
        tmp_path / "truncated.png": "truncated",
        tmp_path / "notes.txt": "not an image",
        tmp_path / "empty.png": "empty file",
        tmp_path / "no-pictures": "no images",
        tmp_path / "missing.png": "no such file",
        tmp_path / "lab.tif": "cannot convert its LAB pixels",
    }

    result = predict(repo, *(tmp_path / name for name in names), check=False)
    assert_error_lines(result, expected)
    assert "good.png" in result.stdout and "also-good.jpg" in result.stdout and "truncated" not in result.stdout

    result = predict(repo, "--json", *(tmp_path / name for name in names), check=False)
    assert_error_lines(result, expected)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [os.path.basename(row["file"]) for row in rows] == names  # one object per file, in order
    assert [("top" in row, "error" in row) for row in rows] == [(True, False)] + [(False, True)] * 6 + [(True, False)]


@e2e
@pytest.mark.parametrize(
    "model, fix",
    [
        ("nosuch", "unknown model 'nosuch'"),
        ("untrained", "not trained yet; train it with: dvc repro train@untrained (or fetch it: dvc pull)"),
    ],
)
def test_unknown_or_untrained_model_is_one_line_with_the_fix(repo, tmp_path, model, fix):
    shop_picture(repo.test.images[0]).save(tmp_path / "good.png")
    result = predict(repo, "--model", model, tmp_path / "good.png", check=False)
    assert_error_lines(result, {f"models/{model}.pt": fix})
    assert "dvc repro train@" in result.stderr and "dvc pull" in result.stderr and "tiny" in result.stderr
    assert result.stdout == ""


@e2e
def test_default_model_is_the_leaderboards_best_and_grid_is_drawn(repo, tmp_path):
    shop_picture(repo.test.images[0]).save(tmp_path / "shirt.webp")
    result = predict(repo, "--grid", tmp_path / "grid.png", tmp_path / "shirt.webp")
    assert "tiny predictions" in result.stdout and "inverted; 112x112" in result.stdout
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and grid.width > 100


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([{"model": "a", "best_val_accuracy": 0.5}, {"model": "b", "best_val_accuracy": 0.9}], "b"),
        ([{"model": "a", "best_val_accuracy": 0.5}, {"model": "c", "test_accuracy": 0.99}], "a"),
        ([{"model": "c", "test_accuracy": 0.99}], "without a validation split (val_size: 0)"),
        ([], "no leaderboard"),
        ({"model": "a"}, "no leaderboard"),
    ],
    ids=["best-on-validation", "unscored-rows-skipped", "val-size-zero", "empty", "not-a-list"],
)
def test_the_default_model_is_chosen_on_validation_or_the_reason_given(tmp_path, rows, expected):
    board = tmp_path / "leaderboard.json"
    board.write_text(json.dumps(rows))
    if len(expected) == 1:
        assert predicting.best_model(board) == expected
    else:
        with pytest.raises(predicting.ModelError, match=re.escape(expected)):
            predicting.best_model(board)
