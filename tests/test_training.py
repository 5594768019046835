"""The Trainer in process, on a synthetic split: it learns, and resuming gives the same state."""

import io

import pytest
import torch

from fmnist.core import settings
from fmnist.data import splits as data
from fmnist.model import device, inference, models
from fmnist.params import config
from fmnist.train import training
from fmnist.train.progress import Silent
from tests.synthetic import images_and_labels


def split(count: int, seed: int) -> data.Split:
    images, labels = images_and_labels(count, seed)
    return data.Split(images.unsqueeze(1), labels.long())


TRAIN, VAL = split(400, seed=1), split(100, seed=2)
RUNTIME = inference.Runtime(torch.device("cpu"), torch.float32, mean=0.3, std=0.3, channels_last=False)


def trainer(epochs: int) -> training.Trainer:
    cfg = (
        config.parse(
            {
                "epochs": epochs,
                "batch_size": 32,
                "device": "cpu",
                "precision": "fp32",
                "models": {
                    "m": {
                        "arch": "mlp",
                        "hidden": [32],
                        "lr": 0.01,
                        "lookahead": True,
                        "augment": {"flip": "alternate", "erase": 0.2},
                    },
                },
            }
        )
        .models["m"]
        .training
    )
    device.make_deterministic(cfg.seed)
    return training.Trainer(models.build(cfg.arch, cfg.options), cfg, RUNTIME, TRAIN)


def train_loss(model: torch.nn.Module) -> float:
    return inference.loss_and_accuracy(inference.predict(model, TRAIN.images, RUNTIME, 256), TRAIN.labels)[0]


def test_one_epoch_lowers_the_loss():
    one = trainer(epochs=1)
    before = train_loss(one.model)
    one.fit(TRAIN, VAL, Silent())
    assert train_loss(one.model) < 0.8 * before
    assert len(one.history) == 1 and one.best_state


class Stop(Exception):
    pass


def test_resume_after_an_epoch_gives_the_uninterrupted_state():
    whole = trainer(epochs=3)
    whole.fit(TRAIN, VAL, Silent())

    saved = io.BytesIO()

    def stop_after_first_epoch(t: training.Trainer) -> None:
        torch.save(t.state_dict(), saved)
        raise Stop

    with pytest.raises(Stop):
        trainer(epochs=3).fit(TRAIN, VAL, Silent(), on_epoch=stop_after_first_epoch)
    resumed = trainer(epochs=3)
    torch.manual_seed(12345)  # a different global RNG state: resuming must restore it
    resumed.load_state_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    resumed.fit(TRAIN, VAL, Silent())

    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert all(torch.equal(whole.best_state[key], resumed.best_state[key]) for key in whole.best_state)
    assert without_time(whole.history) == without_time(resumed.history)
    for index, state in whole.optimizer.state_dict()["state"].items():
        assert all(
            torch.equal(value, resumed.optimizer.state_dict()["state"][index][key]) for key, value in state.items()
        )


def without_time(history: list[training.EpochLog]) -> list[tuple]:
    return [(log.epoch, log.train_loss, log.train_accuracy, log.val_loss, log.val_accuracy, log.lr) for log in history]


def test_batch_norm_statistics_are_recomputed_from_the_images():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    norm = model[1]
    model.eval()
    training.recalibrate_batch_norm(model, TRAIN.images, RUNTIME, batch_size=100)
    with torch.no_grad():
        features = model[0](inference.normalize(inference.to_float(TRAIN.images), RUNTIME))
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert norm.momentum == 0.1 and not model.training and not norm.training  # left as it was found


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


def config_with(**changes) -> settings.Training:
    return config.parse({"models": {"m": {"arch": "cnn", "lr": 2.0, **changes}}}).models["m"].training


def test_the_schedule_warms_up_from_and_decays_to_the_given_factors():
    cfg = config_with(scheduler="onecycle", warmup_from=0.2, decay_to=0.07)
    factors = [training.lr_factor(step, 100, 23, cfg) for step in range(100)]
    assert factors[0] == pytest.approx(0.2 + 0.8 / 23) and factors[22] == 1.0
    assert factors[-1] == pytest.approx(0.07 + 0.93 / 77) and factors == sorted(factors[:23]) + sorted(
        factors[23:], reverse=True
    )


def test_batch_norm_parameters_learn_faster_and_decay_at_the_same_absolute_rate():
    cfg = config_with(weight_decay=0.01, bias_lr_factor=64, decay_all=True)
    model = models.build(cfg.arch, cfg.options)
    weights, biases, norms = training.parameter_groups(model, cfg)
    assert norms["lr"] == 2.0 * 64 and norms["lr"] * norms["weight_decay"] == pytest.approx(2.0 * 0.01)
    assert biases["weight_decay"] == weights["weight_decay"] == 0.01
    assert len(norms["params"]) == 2 * 6 and all(p.ndim == 1 for p in norms["params"])  # 6 batch norms
    assert training.parameter_groups(model, config_with(weight_decay=0.01))[1]["weight_decay"] == 0.0


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
    run = trainer(epochs=2)
    run.loss_fn = lambda logits, labels: logits.sum() * float("nan")
    kept = []
    with pytest.raises(training.Diverged, match=r"models.m.lr = 0.01: the training loss diverged \(nan\) in epoch 1"):
        run.fit(TRAIN, VAL, Silent(), on_epoch=kept.append)
    assert kept == [] and run.history == []


def test_recalibration_skips_a_last_batch_of_one_image():
    """resnet18 ends at 1 x 1 maps, where batch norm in training mode needs two images."""
    model = models.build("resnet18", {"downsample": 4, "whiten": False})
    training.recalibrate_batch_norm(model, TRAIN.images[:33], RUNTIME, batch_size=32)
