"""Divergence, however it shows, stops training in one line naming the lr and the epoch; nothing is saved."""

import pytest
import torch

from fmnist.core import settings
from fmnist.data.splits import Split, Splits
from fmnist.train import training
from tests.synthetic import images_and_labels


def splits() -> Splits:
    images, labels = images_and_labels(600, seed=1)
    split = Split(images.unsqueeze(1), labels.long())
    return Splits(split.take(torch.arange(500)), split.take(torch.arange(500, 600)), 0.3, 0.3)


def recipe(**changes) -> settings.Recipe:
    base = {"arch": "mlp", "lr": 10.0, "optimizer": "sgd", "epochs": 3, "batch_size": 50, "device": "cpu"}
    return settings.Recipe(name="mlp", **(base | changes), options={"hidden": [64], "dropout": 0.0})


def test_a_finite_but_exploding_training_loss_stops_training():
    with pytest.raises(training.Diverged) as error:
        training.run(recipe(), splits())
    message = str(error.value)
    assert message.startswith("params.yaml: models.mlp.lr = 10.0: training diverged in epoch 1 (the training loss is ")
    assert message.endswith("nothing was saved from it (try a lower lr)")


def test_a_nan_validation_loss_stops_training_even_when_the_training_loss_looks_fine(monkeypatch):
    calls = []

    def nan_after_first(logits, labels):
        calls.append(1)
        return (float("nan") if len(calls) > 1 else 1.0), 0.5

    monkeypatch.setattr(training, "loss_and_accuracy", nan_after_first)
    saved = []
    with pytest.raises(training.Diverged, match=r"diverged in epoch 2 \(the validation loss is nan\)"):
        training.run(recipe(lr=0.01), splits(), on_epoch=lambda trainer: saved.append(len(trainer.history)))
    assert saved == [1]  # epoch 2 reached no output


def test_a_sane_run_is_not_taken_for_divergence():
    trainer = training.run(recipe(lr=0.05), splits())
    assert len(trainer.history) == 3 and trainer.history[-1].val_accuracy > 0.5
