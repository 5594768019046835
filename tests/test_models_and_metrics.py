"""Architectures, their size, whitening and dirac init, metrics, checkpoints and exports."""

import io
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from bench.live_taps import all_taps
from fmnist.core import settings
from fmnist.core.errors import DataError
from fmnist.model import checkpoint, models
from fmnist.model.inference import to_float
from fmnist.params import parse
from fmnist.report import export, metrics
from fmnist.train import training
from tests.synthetic import images_and_labels


def defaults(arch: str) -> dict:
    return asdict(settings.ARCH_OPTIONS[arch]())


@pytest.mark.parametrize("arch", list(settings.ARCH_OPTIONS))
def test_every_architecture_maps_images_to_ten_logits(arch):
    model = models.build(arch, defaults(arch))
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_every_model_normalises_its_input_with_the_statistics_it_was_built_with():
    model = models.build("logreg", {}, mean=0.3, std=0.35)
    pixels = torch.rand(2, 1, 28, 28)
    assert torch.allclose(model(pixels), model[1]((pixels - 0.3) / 0.35))
    assert set(model.state_dict()) >= {"0.mean", "0.std"}  # saved with the weights


def test_an_exported_program_names_no_source_file_so_it_depends_on_the_weights_alone():
    model = models.build("cnn", defaults("cnn"))
    buffer = io.BytesIO()
    torch.export.save(export.program(model, 2), buffer)
    assert str(Path(models.__file__).parent).encode() not in buffer.getvalue()


@pytest.mark.parametrize("whiten, expected", [(False, {1: 28, 2: 14, 4: 7}), (True, {1: 27, 2: 14, 4: 7})])
def test_resnet_downsample_shrinks_feature_maps(whiten, expected):
    sizes = {}
    for downsample in (1, 2, 4):
        model = models.resnet18(downsample, whiten)
        stem = torch.nn.Sequential(model.conv1, model.maxpool)
        sizes[downsample] = stem(torch.zeros(1, 1, 28, 28)).shape[-1]
    assert sizes == expected


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_a_live_tap_convolution_has_the_outputs_and_gradients_of_the_full_one(size, stride):
    torch.manual_seed(size + stride)
    full = torch.nn.Conv2d(4, 6, 3, stride, padding=1).double()
    live = models.LiveTapConv2d(4, 6, 3, stride, padding=1).double()
    live.load_state_dict(full.state_dict())
    x = torch.randn(2, 4, size, size, dtype=torch.double, requires_grad=True)
    outputs = [conv(x) for conv in (full, live)]
    grads = [
        torch.autograd.grad(y.square().sum(), [x, conv.weight, conv.bias]) for y, conv in zip(outputs, (full, live))
    ]
    torch.testing.assert_close(outputs[1], outputs[0])
    for mine, theirs in zip(grads[1], grads[0]):
        torch.testing.assert_close(mine, theirs)


def test_resnet_skips_the_taps_that_read_only_padding_on_its_last_maps():
    model = models.build("resnet18", {"downsample": 4, "whiten": True}).eval()
    reference = all_taps(models.build("resnet18", {"downsample": 4, "whiten": True})).eval()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), reference(x))
    # 7 x 7 -> 1 x 1 maps: the last stage's 3 x 3 convolutions cost 1/9 (1 x 1) and 4/9 (2 x 2 at stride 2).
    assert models.size(model)["multiply_adds"] < 0.8 * models.size(reference)["multiply_adds"]


CNN_OPTIONS = {"channels": [8, 16], "whiten": True, "dirac": True, "bn_scale": False, "logit_scale": 1.0}


@pytest.mark.parametrize(
    "arch, options",
    [
        ("logreg", {}),
        ("mlp", {"hidden": [32, 16], "dropout": 0.1}),
        ("cnn", CNN_OPTIONS | {"residual": False}),
        ("cnn", CNN_OPTIONS | {"residual": True}),
        ("resnet18", {"downsample": 4, "whiten": True}),
    ],
)
def test_model_size_counts_the_multiply_adds_pytorch_counts(arch, options):
    from torch.utils.flop_counter import FlopCounterMode

    model = models.build(arch, options).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 28, 28))
    assert models.size(model)["multiply_adds"] == counter.get_total_flops() // 2 > 0


def learnable(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels in [0, 1] whose class is drawn in them (tests.synthetic's templates under noise)."""
    images, labels = images_and_labels(count, seed)
    return to_float(images.unsqueeze(1)), labels.long()


@pytest.mark.parametrize(
    "arch, options",
    [
        ("logreg", {}),
        ("mlp", {"hidden": [32]}),
        ("cnn", {"channels": [8, 16]}),
    ],
)
def test_a_few_optimizer_steps_learn_classes_drawn_in_the_pixels(arch, options):
    x, y = learnable(200, seed=1)
    unseen_x, unseen_y = learnable(200, seed=2)
    recipe = (
        parse.parse({"models": {"m": {"arch": arch, "lr": 0.01, "optimizer": "adam", **options}}}).models["m"].recipe
    )
    torch.manual_seed(0)
    model = models.build(recipe.arch, recipe.options, x.mean().item(), x.std().item())
    models.fit_to_data(model, x)  # the cnn's whitening stem
    optimizer = training.make_optimizer(model, recipe)

    def unseen_accuracy() -> float:
        with torch.no_grad():
            return (model.eval()(unseen_x).argmax(1) == unseen_y).float().mean().item()

    before = unseen_accuracy()
    model.train()
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert before < 0.3 and unseen_accuracy() > 0.6  # ten classes: chance is 0.1


def test_the_cnn_head_keeps_finite_gradients_under_torch_compile_in_bf16():
    """`compile: true` at `precision: bf16`: with amax as the global pool, every gradient was NaN."""
    torch.manual_seed(0)
    head = torch.nn.Sequential(
        torch.nn.Conv2d(8, 16, 3, padding=1, bias=False),
        models.BatchNorm(16, scale=False),
        torch.nn.GELU(),
        models.GlobalMaxPool(),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.compile(head)(torch.randn(256, 8, 3, 3)).float().sum().backward()
    assert all(p.grad.isfinite().all() for p in head.parameters() if p.grad is not None)


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


OPTIONS = {"hidden": [8], "dropout": 0.0}


def save_mlp(path, **changes):
    """A checkpoint as train writes it, of an untrained mlp, with `changes` to its fields (None: drop it)."""
    weights = models.build("mlp", OPTIONS, mean=0.3, std=0.35).state_dict()
    checkpoint.save(path, weights, "mlp", OPTIONS, 1, 0.5, [], "test")
    saved = torch.load(path, weights_only=True)
    saved |= changes
    torch.save({key: value for key, value in saved.items() if value is not None}, path)


def test_checkpoint_round_trip_keeps_the_normalisation_in_the_weights(tmp_path):
    save_mlp(tmp_path / "m.pt")
    model, saved = checkpoint.load(tmp_path / "m.pt")
    assert (saved["arch"], saved["options"], saved["best_epoch"], saved["best_val_accuracy"]) == (
        "mlp",
        OPTIONS,
        1,
        0.5,
    )
    assert "normalization" not in saved
    assert (model[0].mean.item(), model[0].std.item()) == pytest.approx((0.3, 0.35))
    weights = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(value, weights[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"arch": None}, "'arch'"),
        ({"arch": "transformer"}, "'transformer'"),
        ({"options": {"width": 8}}, "mlp() got an unexpected keyword argument 'width'"),
        ({"options": {"hidden": [16], "dropout": 0.0}}, "size mismatch for 1.1.weight"),
        ({"arch": "logreg", "options": {}}, "Unexpected key(s) in state_dict"),
        ({"state_dict": {}}, 'Missing key(s) in state_dict: "0.mean"'),
        (
            {"state_dict": models.mlp([8], 0.0).state_dict()},
            'Missing key(s) in state_dict: "0.mean"',
        ),  # before Normalize
    ],
    ids=["no-arch", "unknown-arch", "unknown-option", "other-widths", "other-arch", "no-weights", "old-layout"],
)
def test_a_checkpoint_of_something_else_is_one_line_naming_the_file(tmp_path, changes, reason):
    path = tmp_path / "m.pt"
    save_mlp(path, **changes)
    with pytest.raises(DataError) as error:
        checkpoint.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a checkpoint this code can load (") and reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "missing; run the train stage first"),
        (b"", "unreadable checkpoint"),
        (b"weights", "unreadable checkpoint"),
    ],
)
def test_a_missing_or_damaged_file_is_one_line_naming_it(tmp_path, content, reason):
    path = tmp_path / "m.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{path}: {reason}"):
        checkpoint.load(path)


def test_a_file_holding_a_bare_tensor_is_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(DataError, match=r"not a checkpoint this code can load \(a Tensor, not a dict\)$"):
        checkpoint.load(tmp_path / "t.pt")


def test_a_bare_state_dict_is_not_a_checkpoint(tmp_path):
    torch.save(models.build("logreg", {}).state_dict(), tmp_path / "m.pt")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'm.pt'}: not a checkpoint this code can load \('arch'\)$"):
        checkpoint.load(tmp_path / "m.pt")


def test_a_residual_group_adds_a_third_conv_whose_branch_joins_the_first_convs_output():
    options = CNN_OPTIONS | {"channels": [8], "dirac": False}
    plain, residual = (models.cnn(**options, residual=flag) for flag in (False, True))
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (plain, residual)]
    assert convs[1] == convs[0] + 1
    branch = next(m for m in residual.modules() if isinstance(m, models.Residual))
    x = torch.randn(2, 8, 13, 13)
    assert torch.equal(branch(x), x + torch.nn.Sequential(*branch)(x))
