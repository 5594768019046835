"""The Trainer in process, on a synthetic split: it learns, and resuming gives the same state."""

import io

import pytest
import torch

from fmnist import config, data, device, engine, models
from fmnist.progress import Silent
from tests.synthetic import images_and_labels


def split(count: int, seed: int) -> data.Split:
    images, labels = images_and_labels(count, seed)
    return data.Split(images.unsqueeze(1), labels.long())


TRAIN, VAL = split(400, seed=1), split(100, seed=2)
RUNTIME = engine.Runtime(torch.device("cpu"), torch.float32, mean=0.3, std=0.3, channels_last=False)


def trainer(epochs: int) -> engine.Trainer:
    cfg = config.parse({"epochs": epochs, "batch_size": 32, "device": "cpu", "precision": "fp32", "models": {
        "m": {"arch": "mlp", "hidden": [32], "lr": 0.01, "augment": {"flip": True, "erase": 0.2}},
    }}).models["m"]
    device.make_deterministic(cfg.seed)
    return engine.Trainer(models.build(cfg.arch, cfg.options), cfg, RUNTIME, len(TRAIN))


def train_loss(model: torch.nn.Module) -> float:
    return engine.loss_and_accuracy(engine.predict(model, TRAIN.images, RUNTIME, 256, tta_flip=False), TRAIN.labels)[0]


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

    def stop_after_first_epoch(t: engine.Trainer) -> None:
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
        assert all(torch.equal(value, resumed.optimizer.state_dict()["state"][index][key]) for key, value in state.items())


def without_time(history: list[engine.EpochLog]) -> list[tuple]:
    return [(log.epoch, log.train_loss, log.train_accuracy, log.val_loss, log.val_accuracy, log.lr) for log in history]


def test_batch_norm_statistics_are_recomputed_from_the_images():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    norm = model[1]
    model.eval()
    engine.recalibrate_batch_norm(model, TRAIN.images, RUNTIME, batch_size=100)
    with torch.no_grad():
        features = model[0](engine.normalize(data.to_float(TRAIN.images), RUNTIME))
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert norm.momentum == 0.1 and not model.training and not norm.training  # left as it was found


def test_ema_moves_each_weight_towards_the_model_by_one_minus_decay():
    model = torch.nn.Linear(3, 2)
    ema = engine.EMA(model, decay=0.9)
    start = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    assert torch.allclose(ema.module.weight, start + 0.1)
