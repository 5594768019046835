"""Training in process, on a synthetic split: it learns, and resuming gives the same state."""

import io
import math

import pytest
import torch

from fmnist.core import settings
from fmnist.data import splits as data
from fmnist.model import determinism, inference, models
from fmnist.params import parse
from fmnist.train import training
from fmnist.train.distributed import World
from fmnist.train.progress import Silent
from tests.synthetic import images_and_labels


def split(count: int, seed: int) -> data.Split:
    images, labels = images_and_labels(count, seed)
    return data.Split(images.unsqueeze(1), labels.long())


TRAIN, VAL = split(400, seed=1), split(100, seed=2)
SPLITS = data.Splits(TRAIN, VAL, mean=0.3, std=0.3)
RUNTIME = inference.Runtime(torch.device("cpu"), torch.float32, channels_last=False)


def recipe(epochs: int) -> settings.Recipe:
    """A small mlp that uses every generator a run keeps: dropout (global), shuffling, augmentation, lookahead."""
    params = {
        "epochs": epochs,
        "batch_size": 32,
        "device": "cpu",
        "precision": "fp32",
        "models": {
            "m": {
                "arch": "mlp",
                "hidden": [32],
                "dropout": 0.1,
                "lr": 0.01,
                "lookahead": True,
                "augment": {"flip": "alternate", "erase": 0.2},
            },
        },
    }
    return parse.parse(params).models["m"].recipe


def run(epochs: int, **options) -> training.Trainer:
    return training.run(recipe(epochs), SPLITS, runtime=RUNTIME, **options)


def train_loss(model: torch.nn.Module) -> float:
    return inference.loss_and_accuracy(inference.predict(model, TRAIN.images, RUNTIME, 256), TRAIN.labels)[0]


def untrained(cfg: settings.Recipe) -> torch.nn.Sequential:
    """The model as `training.run` starts it."""
    determinism.make_deterministic(cfg.seed)
    return models.build(cfg.arch, cfg.options, SPLITS.mean, SPLITS.std)


def test_one_epoch_lowers_the_loss():
    before = train_loss(untrained(recipe(1)))
    one = run(epochs=1)
    assert train_loss(one.model) < 0.8 * before
    assert len(one.history) == 1 and one.best_state


class Stop(Exception):
    pass


def resume_point_after_epoch_one(epochs: int) -> dict:
    """The state a run of `epochs` saves after its first, as the train stage saves it, read back."""
    saved = io.BytesIO()

    def stop_after_first_epoch(t: training.Trainer) -> None:
        torch.save(t.state_dict(), saved)
        raise Stop

    with pytest.raises(Stop):
        run(epochs, on_epoch=stop_after_first_epoch)
    return torch.load(io.BytesIO(saved.getvalue()), weights_only=True)


def assert_same_run(a: training.Trainer, b: training.Trainer) -> None:
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert a.best_state.keys() == b.best_state.keys()
    assert all(torch.equal(a.best_state[key], b.best_state[key]) for key in a.best_state)
    assert [log.curve() for log in a.history] == [log.curve() for log in b.history]


def test_resume_after_an_epoch_gives_the_uninterrupted_state():
    whole = run(epochs=3)
    state = resume_point_after_epoch_one(epochs=3)
    resumed = run(epochs=3, resume=state)
    assert len(state["history"]) == 1 and len(resumed.history) == 3
    assert_same_run(whole, resumed)
    for index, optimizer_state in whole.optimizer.state_dict()["state"].items():
        assert all(
            torch.equal(value, resumed.optimizer.state_dict()["state"][index][key])
            for key, value in optimizer_state.items()
        )


def renamed_weights(state: dict) -> dict:
    return {**state, "model": {f"old.{key}": value for key, value in state["model"].items()}}


def without_best_accuracy(state: dict) -> dict:
    """Fails at its last field, once the weights, generators and history have loaded."""
    return {key: value for key, value in state.items() if key != "best_accuracy"}


@pytest.mark.parametrize("damage", [renamed_weights, without_best_accuracy])
def test_a_resume_point_that_does_not_fit_is_one_warning_and_a_fresh_run(capsys, damage):
    fresh = run(epochs=2)
    bad = damage(resume_point_after_epoch_one(epochs=2))
    capsys.readouterr()
    resumed = run(epochs=2, resume=bad)
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: the resume point does not fit this model (")
    assert warning.endswith("); training from the start")
    assert_same_run(fresh, resumed)


def test_batch_norm_statistics_are_recomputed_from_the_images():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    norm = model[1]
    model.eval()
    training.recalibrate_batch_norm(model, TRAIN.images, RUNTIME, batch_size=100)
    with torch.no_grad():
        features = model[0](inference.to_float(TRAIN.images))
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert norm.momentum == 0.1 and not model.training and not norm.training  # left as it was found


def test_recalibration_skips_a_last_batch_of_one_image():
    """Maps of 1 x 1 (resnet18's last) leave batch norm one value per channel from one image: too few."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 28), torch.nn.BatchNorm2d(2))  # 28 x 28 -> 1 x 1
    images = TRAIN.images[:33]
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model.train()(inference.to_float(images[32:]))  # what recalibrating on the last batch alone would do
    training.recalibrate_batch_norm(model, images, RUNTIME, batch_size=32)
    with torch.no_grad():
        first_batch = model[0](inference.to_float(images[:32])).flatten(1)
    assert torch.allclose(model[1].running_mean, first_batch.mean(0), atol=1e-6)
    assert torch.allclose(model[1].running_var, first_batch.var(0), rtol=1e-5)


def test_lookahead_pulls_the_weights_to_the_slow_copy_every_few_steps_and_keeps_it_at_the_end():
    model = torch.nn.Linear(3, 2)
    lookahead = training.Lookahead(model)
    slow = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.update(step=4, total=10)  # not a multiple of 5: nothing happens
    assert torch.equal(model.weight, slow + 1)
    lookahead.update(step=5, total=10)
    decay = 0.95**5 * 0.5**3
    assert torch.allclose(model.weight, slow + (1 - decay)) and torch.equal(lookahead.slow[0], model.weight)
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.update(step=10, total=10)  # the last step: the slow weights, unmoved
    assert torch.allclose(model.weight, slow + (1 - decay))


def recipe_with(**changes) -> settings.Recipe:
    return parse.parse({"models": {"m": {"arch": "cnn", "lr": 2.0, **changes}}}).models["m"].recipe


def test_the_schedule_warms_up_from_and_decays_to_the_given_factors():
    cfg = recipe_with(scheduler="onecycle", warmup_from=0.2, decay_to=0.07)
    factors = [training.lr_factor(step, 100, 23, cfg) for step in range(100)]
    assert factors[0] == pytest.approx(0.2 + 0.8 / 23) and factors[22] == 1.0
    assert factors[-1] == pytest.approx(0.07 + 0.93 / 77) and factors == sorted(factors[:23]) + sorted(
        factors[23:], reverse=True
    )
    assert training.lr_factor(5, 10, 0, recipe_with(scheduler="cosine")) == pytest.approx(0.5)
    assert training.lr_factor(9, 10, 0, recipe_with(scheduler="constant")) == 1.0


def test_batch_norm_parameters_learn_faster_and_decay_at_the_same_absolute_rate():
    cfg = recipe_with(weight_decay=0.01, bias_lr_factor=64, decay_all=True)
    model = models.build(cfg.arch, cfg.options)
    weights, biases, norms = training.parameter_groups(model, cfg)
    assert norms["lr"] == 2.0 * 64 and norms["lr"] * norms["weight_decay"] == pytest.approx(2.0 * 0.01)
    assert biases["weight_decay"] == weights["weight_decay"] == 0.01
    assert len(norms["params"]) == 2 * 6 and all(p.ndim == 1 for p in norms["params"])  # 6 batch norms
    assert training.parameter_groups(model, recipe_with(weight_decay=0.01))[1]["weight_decay"] == 0.0


def test_six_view_tta_averages_the_mirror_and_the_shifted_views():
    x = torch.randn(4, 1, 28, 28)
    mean_pixel = lambda x: x.mean((1, 2, 3))[:, None]  # noqa: E731 - unchanged by flips, changed by shifts
    views = {n: inference.tta_logits(mean_pixel, x, n) for n in (1, 2, 6)}
    assert torch.allclose(views[1], views[2])
    shifted = [torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[..., a : a + 28, a : a + 28] for a in (0, 2)]
    expected = 0.5 * mean_pixel(x) + 0.25 * (mean_pixel(shifted[0]) + mean_pixel(shifted[1]))
    assert torch.allclose(views[6], expected)
    left_half = lambda x: x[..., :14].sum((1, 2, 3))[:, None]  # noqa: E731 - changed by a flip
    assert torch.allclose(inference.tta_logits(left_half, x, 2), (left_half(x) + left_half(x.flip(3))) / 2)


def test_a_diverged_loss_stops_training_with_one_line_before_anything_is_kept():
    cfg = recipe(epochs=2)
    trainer = training.Trainer(untrained(cfg), cfg, RUNTIME, TRAIN, VAL, World())
    trainer.loss_fn = lambda logits, labels: logits.sum() * float("nan")  # the loss the fit loop checks
    kept = []
    with pytest.raises(
        training.Diverged, match=r"lr = 0.01: training diverged in epoch 1 \(the training loss is nan\)"
    ):
        trainer.fit(Silent(), on_epoch=kept.append)
    assert kept == [] and trainer.history == []


def test_without_a_validation_split_training_keeps_the_last_epoch():
    """val_size: 0, the final fit on every training image: no epoch can be chosen, so the last one is kept."""
    empty = VAL.take(torch.arange(0))
    trainer = training.run(recipe(3), data.Splits(TRAIN, empty, 0.3, 0.3), runtime=RUNTIME)
    assert trainer.best_epoch() is trainer.history[-1] and math.isnan(trainer.history[-1].val_accuracy)
    last = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    assert all(torch.equal(last[k], v) for k, v in trainer.best_state.items())
