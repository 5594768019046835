import io
from pathlib import Path

import pytest
import torch

from fmnist.core.errors import DataError
from fmnist.model import checkpoint, export, models
from fmnist.params import config
from fmnist.report import metrics
from fmnist.train import training


@pytest.mark.parametrize("arch", list(config.ARCH_OPTIONS))
def test_every_architecture_maps_images_to_ten_logits(arch):
    model = models.build(arch, {name: setting.default for name, setting in config.ARCH_OPTIONS[arch].items()})
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_an_exported_program_names_no_source_file_so_it_depends_on_the_weights_alone():
    model = models.build("cnn", {name: setting.default for name, setting in config.ARCH_OPTIONS["cnn"].items()})
    buffer = io.BytesIO()
    torch.export.save(export.program(model, 0.3, 0.35, 2), buffer)
    assert str(Path(models.__file__).parent).encode() not in buffer.getvalue()


@pytest.mark.parametrize("whiten, expected", [(False, {1: 28, 2: 14, 4: 7}), (True, {1: 27, 2: 14, 4: 7})])
def test_resnet_downsample_shrinks_feature_maps(whiten, expected):
    sizes = {}
    for downsample in (1, 2, 4):
        model = models.resnet18(downsample, whiten)
        stem = torch.nn.Sequential(model.conv1, model.maxpool)
        sizes[downsample] = stem(torch.zeros(1, 1, 28, 28)).shape[-1]
    assert sizes == expected


@pytest.mark.parametrize(
    "arch, options",
    [
        ("logreg", {}),
        ("mlp", {"hidden": [32, 16], "dropout": 0.1}),
        ("cnn", {"channels": [8, 16], "whiten": True, "dirac": True, "bn_scale": False, "logit_scale": 1.0}),
        ("resnet18", {"downsample": 4, "whiten": True}),
    ],
)
def test_model_size_counts_the_multiply_adds_pytorch_counts(arch, options):
    from torch.utils.flop_counter import FlopCounterMode

    model = models.build(arch, options).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 28, 28))
    assert models.size(model)["multiply_adds"] == counter.get_total_flops() // 2 > 0


@pytest.mark.parametrize("arch", ["logreg", "mlp", "cnn"])
def test_training_steps_lower_the_loss(arch):
    torch.manual_seed(0)
    cfg = config.parse({"models": {"m": {"arch": arch, "lr": 0.01, "optimizer": "adam"}}}).models["m"].training
    if arch == "cnn":
        cfg = (
            config.parse(
                {"models": {"m": {"arch": arch, "lr": 0.01, "optimizer": "adam", "channels": [8], "whiten": False}}}
            )
            .models["m"]
            .training
        )
    model = models.build(cfg.arch, cfg.options)
    optimizer = training.make_optimizer(model, cfg)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_lr_schedule_warms_up_then_decays_to_zero():
    shape = lambda name: (
        config.parse({"models": {"m": {"arch": "logreg", "lr": 1, "scheduler": name}}}).models["m"].training
    )  # noqa: E731
    factors = [training.lr_factor(step, 10, 2, shape("onecycle")) for step in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(1 / 8)
    assert training.lr_factor(5, 10, 0, shape("cosine")) == pytest.approx(0.5)
    assert training.lr_factor(9, 10, 0, shape("constant")) == 1.0


def test_whitening_decorrelates_the_training_patches():
    x = torch.rand(64, 1, 28, 28).cumsum(3) / 28  # neighbouring pixels strongly correlated
    whiten = models.Whiten()
    whiten.fit(x, eps=1e-9)
    with torch.no_grad():
        features = torch.nn.functional.conv2d(x, whiten.weight[:4]).permute(0, 2, 3, 1).reshape(-1, 4).double()
    covariance = torch.cov(features.T)
    assert torch.allclose(covariance, torch.eye(4, dtype=torch.float64), atol=1e-3)
    assert torch.equal(whiten.weight[4:], -whiten.weight[:4]) and not whiten.weight.requires_grad


def test_dirac_makes_the_first_filters_the_identity():
    layer = models.conv(4, 8, dirac=True)
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(layer(x)[:, :4], x)


def test_metrics_match_hand_computed_values():
    actual = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 1, 1, 2, 2])
    counts = metrics.confusion(actual, predicted, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert metrics.accuracy(counts) == pytest.approx(4 / 6)
    assert metrics.per_class_accuracy(counts) == pytest.approx([2 / 3, 1 / 2, 1.0])
    # class 0: P=1, R=2/3 -> F1=0.8; class 1: P=1/2, R=1/2 -> 0.5; class 2: P=1/2, R=1 -> 2/3
    assert metrics.macro_f1(counts) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_f1_of_a_never_predicted_class_is_zero():
    counts = metrics.confusion(torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    assert metrics.macro_f1(counts) == pytest.approx((2 / 3 + 0) / 2)


def save_mlp(path, hidden, **changes):
    """A checkpoint as train writes it, of an untrained mlp, with `changes` to its fields (None: drop it)."""
    checkpoint.save(
        path, models.mlp(hidden, 0.0).state_dict(), "mlp", {"hidden": hidden, "dropout": 0.0}, 0.3, 0.3, 1, 0.5, []
    )
    saved = torch.load(path, weights_only=True)
    saved |= changes
    torch.save({key: value for key, value in saved.items() if value is not None}, path)


def test_checkpoint_round_trip(tmp_path):
    save_mlp(tmp_path / "m.pt", [8])
    model, saved = checkpoint.load(tmp_path / "m.pt")
    assert saved["arch"] == "mlp" and "state_dict" not in saved
    assert torch.equal(model[1].weight, torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]["1.weight"])


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"arch": None}, "not a checkpoint of this project (no arch)"),
        ({"arch": "transformer"}, "not a checkpoint of this project (unknown arch 'transformer')"),
        ({"normalization": {"mean": 0.3}}, "not a checkpoint of this project (normalization without mean and std)"),
        (
            {"options": {"width": 8}},
            "not a checkpoint of this project (options that build no mlp: "
            "mlp() got an unexpected keyword argument 'width')",
        ),
        (
            {"options": {"hidden": [16], "dropout": 0.0}},
            "weights do not fit the mlp with hidden=[16], dropout=0.0 (1.weight is (8, 784) in the file, "
            "(16, 784) in the model, and 2 more)",
        ),
        (
            {"arch": "logreg", "options": {}},
            "weights do not fit the logreg (1.weight is (8, 784) in the file, (10, 784) in the model, and 1 more)",
        ),
        ({"state_dict": {}}, "weights do not fit the mlp with hidden=[8], dropout=0.0 (no 1.weight, and 3 more)"),
    ],
)
def test_a_checkpoint_of_something_else_is_one_line_naming_the_file(tmp_path, changes, reason):
    path = tmp_path / "m.pt"
    save_mlp(path, [8], **changes)
    with pytest.raises(DataError) as error:
        checkpoint.load(path)
    assert str(error.value) == f"{path}: {reason}"


@pytest.mark.parametrize(
    "content, reason",
    [
        (models.logreg().state_dict(), "no arch, options, normalization, best_epoch, best_val_accuracy, state_dict"),
        (torch.zeros(3), "a Tensor, not a dict"),
    ],
)
def test_a_bare_state_dict_or_tensor_is_not_a_checkpoint(tmp_path, content, reason):
    torch.save(content, tmp_path / "m.pt")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'm.pt'}: not a checkpoint of this project \({reason}\)$"):
        checkpoint.load(tmp_path / "m.pt")
