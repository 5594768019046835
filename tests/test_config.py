import copy
from pathlib import Path

import pytest

from fmnist import config
from fmnist.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"epochs": 2, "models": {"m": {"arch": "mlp", "lr": 0.01}}}


def with_change(path: str, value):
    """GOOD with the dotted `path` set to value (or removed when value is DELETE)."""
    params = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return params


class Deleted:
    """The value of a key removed from params.yaml; its repr names it in test ids."""

    def __repr__(self) -> str:
        return "deleted"


DELETE = Deleted()

BAD = [
    ("models.m.arch", "transformer", "models.m.arch = \"transformer\": must be one of logreg, mlp, cnn, resnet18"),
    ("models.m.optimizer", "lion", "models.m.optimizer = \"lion\": must be one of sgd, adam, adamw"),
    ("models.m.scheduler", "step", "models.m.scheduler = \"step\": must be one of onecycle, cosine, constant"),
    ("device", "tpu", "device = \"tpu\": must be auto, cpu, cuda or cuda:N"),
    ("models.m.device", "gpu", "models.m.device = \"gpu\": must be auto, cpu, cuda or cuda:N"),
    ("precision", "fp8", "precision = \"fp8\": must be one of auto, fp32, bf16, fp16"),
    ("batch_size", 0, "batch_size = 0: must be an integer in [1, 65536]"),
    ("batch_size", "big", "batch_size = \"big\": must be an integer"),
    ("batch_size", 12.5, "batch_size = 12.5: must be an integer"),
    ("epochs", -1, "epochs = -1: must be an integer in [1, 10000]"),
    ("epochs", True, "epochs = True: must be an integer"),
    ("models.m.lr", -0.1, "models.m.lr = -0.1: must be a number in (0, 10]"),
    ("models.m.lr", 0, "models.m.lr = 0: must be a number in (0, 10]"),
    ("models.m.lr", "fast", "models.m.lr = \"fast\": must be a number"),
    ("models.m.lr", DELETE, "models.m.lr: required key missing"),
    ("models.m.arch", DELETE, "models.m.arch: required key missing"),
    ("models.m.learning_rate", 0.1, "models.m.learning_rate: unknown key (allowed: "),
    ("models.m.channels", [8], "models.m.channels: unknown key"),  # a cnn option on an mlp
    ("typo_key", 1, "typo_key: unknown key"),
    ("models.m.hidden", 128, "models.m.hidden = 128: must be a non-empty list of integers >= 1"),
    ("models.m.hidden", {"a": 1}, "models.m.hidden = {\"a\": 1}: must be a non-empty list"),
    ("models.m.augment", [1], "models.m.augment must be a mapping, got [1]"),
    ("models.m.augment", {"rotate": 10}, "models.m.augment.rotate: unknown key"),
    ("models.m.augment", {"crop": -1}, "models.m.augment.crop = -1: must be an integer in [0, 14]"),
    ("models.m.augment", {"flip": 1}, "models.m.augment.flip = 1: must be true, false or alternate"),
    ("models.m.tta_views", 3, "models.m.tta_views = 3: must be one of 1, 2, 6"),
    ("models.m.dropout", 1.0, "models.m.dropout = 1.0: must be a number in [0, 1)"),
    ("models.m.label_smoothing", 2, "models.m.label_smoothing = 2: must be a number in [0, 1)"),
    ("models.m.warmup_epochs", 5, "models.m.warmup_epochs = 5.0: must not exceed epochs (2)"),
    ("models.m", [1, 2], "models.m must be a mapping, got [1, 2]"),
    ("models", {}, "models: must name at least one model"),
    ("models", ["m"], "models must be a mapping, got [\"m\"]"),
    ("val_size", 0, "val_size = 0: must be an integer >= 1"),
    ("train_subset", -5, "train_subset = -5: must be an integer >= 0"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_value_is_refused_with_key_value_and_what_is_allowed(path, value, message):
    with pytest.raises(ConfigError) as error:
        config.parse(with_change(path, value))
    assert message in str(error.value)
    assert str(error.value).startswith("params.yaml: ")


def test_good_params_parse_with_defaults_and_overrides():
    params = config.parse(with_change("models.m.batch_size", 32))
    model = params.models["m"]
    assert (model.epochs, model.batch_size, model.optimizer, model.options) == (
        2, 32, "adamw", {"hidden": [256, 128, 64], "dropout": 0.0})


def test_params_hash_changes_with_any_setting():
    a = config.parse(GOOD).models["m"]
    b = config.parse(with_change("models.m.lr", 0.02)).models["m"]
    assert a.params_hash() == config.parse(GOOD).models["m"].params_hash()
    assert a.params_hash() != b.params_hash()


def test_repository_params_are_valid():
    params = config.load(ROOT / "params.yaml")
    assert {"logreg", "mlp_small", "mlp", "cnn", "resnet18"} <= set(params.models)


def test_model_name_cannot_point_outside_the_repository():
    with pytest.raises(ConfigError, match="letters, digits"):
        config.parse({"models": {"../../etc/x": {"arch": "mlp", "lr": 1}}})


def test_unparseable_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        config.load(path)
    assert "\n" not in str(error.value)


def test_size_larger_than_data_is_refused():
    with pytest.raises(ConfigError, match="val_size = 70000: must not exceed the 59999 images"):
        config.check_size("val_size", 70000, 59999)


def test_a_global_the_model_overrides_leaves_its_training_settings_unchanged():
    own = with_change("models.m.epochs", 5)
    changed = copy.deepcopy(own)
    changed["epochs"] = 9
    assert config.training_settings(config.parse(own).models["m"]) == config.training_settings(config.parse(changed).models["m"])
    assert config.parse(own).models["m"].params_hash() == config.parse(changed).models["m"].params_hash()
    uses_global = config.parse(with_change("epochs", 9)).models["m"]
    assert config.training_settings(uses_global) != config.training_settings(config.parse(GOOD).models["m"])


def test_an_evaluation_only_setting_is_not_a_training_setting():
    flipped = config.parse(with_change("models.m.tta_views", 2)).models["m"]
    plain = config.parse(GOOD).models["m"]
    assert config.training_settings(flipped) == config.training_settings(plain)
    assert config.evaluation_settings(flipped) != config.evaluation_settings(plain)
    assert "batch_size" not in config.evaluation_settings(plain) and "epochs" not in config.evaluation_settings(plain)


def test_key_names_where_the_setting_was_written():
    assert config.parse(GOOD).models["m"].key("device") == "device"
    assert config.parse(with_change("models.m.device", "cpu")).models["m"].key("device") == "models.m.device"


def test_machine_check_names_the_key_as_written(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r'^params.yaml: device = "cuda": CUDA is not available'):
        config.check_machine(config.parse(with_change("device", "cuda")).models["m"])
    with pytest.raises(ConfigError, match=r'^params.yaml: models.m.precision = "fp16": fp16 needs CUDA'):
        config.check_machine(config.parse(with_change("models.m.precision", "fp16")).models["m"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r'^params.yaml: models.m.device = "cuda:1": only 1 CUDA device'):
        config.check_machine(config.parse(with_change("models.m.device", "cuda:1")).models["m"])
    config.check_machine(config.parse(with_change("device", "cuda:0")).models["m"])
