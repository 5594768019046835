import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from fmnist.core import files, settings
from fmnist.core.errors import ConfigError
from fmnist.data import splits as data
from fmnist.model import device
from fmnist.params import config, schema

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
    ("models.m.arch", "transformer", 'models.m.arch = "transformer": must be one of logreg, mlp, cnn, resnet18'),
    ("models.m.optimizer", "lion", 'models.m.optimizer = "lion": must be one of sgd, adam, adamw'),
    ("models.m.scheduler", "step", 'models.m.scheduler = "step": must be one of onecycle, cosine, constant'),
    ("device", "tpu", 'device = "tpu": must be auto, cpu, cuda or cuda:N'),
    ("models.m.device", "gpu", 'models.m.device = "gpu": must be auto, cpu, cuda or cuda:N'),
    ("precision", "fp8", 'precision = "fp8": must be one of auto, fp32, bf16, fp16'),
    ("batch_size", 0, "batch_size = 0: must be an integer in [1, 65536]"),
    ("batch_size", "big", 'batch_size = "big": must be an integer'),
    ("batch_size", 12.5, "batch_size = 12.5: must be an integer"),
    ("epochs", -1, "epochs = -1: must be an integer in [1, 10000]"),
    ("epochs", True, "epochs = True: must be an integer"),
    ("models.m.lr", -0.1, "models.m.lr = -0.1: must be a number in (0, 10]"),
    ("models.m.lr", 0, "models.m.lr = 0: must be a number in (0, 10]"),
    ("models.m.lr", "fast", 'models.m.lr = "fast": must be a number'),
    ("models.m.lr", DELETE, "models.m.lr: required key missing"),
    ("models.m.arch", DELETE, "models.m.arch: required key missing"),
    ("models.m.learning_rate", 0.1, "models.m.learning_rate: unknown key (allowed: "),
    ("models.m.channels", [8], "models.m.channels: unknown key"),  # a cnn option on an mlp
    ("typo_key", 1, "typo_key: unknown key"),
    ("models.m.hidden", 128, "models.m.hidden = 128: must be a non-empty list of integers in [1, 16384]"),
    (
        "models.m.hidden",
        [128, 2000000000],
        "models.m.hidden = [128, 2000000000]: must be a non-empty list of integers in [1, 16384]",
    ),
    ("models.m.hidden", {"a": 1}, 'models.m.hidden = {"a": 1}: must be a non-empty list'),
    ("models.m.augment", [1], "models.m.augment must be a mapping, got [1]"),
    ("models.m.augment", {"rotate": 10}, "models.m.augment.rotate: unknown key"),
    ("models.m.augment", {"crop": -1}, "models.m.augment.crop = -1: must be an integer in [0, 14]"),
    ("models.m.augment", {"flip": 1}, "models.m.augment.flip = 1: must be true, false or alternate"),
    ("models.m.tta_views", 3, "models.m.tta_views = 3: must be one of 1, 2, 6"),
    ("models.m.dropout", 1.0, "models.m.dropout = 1.0: must be a number in [0, 1)"),
    ("models.m.label_smoothing", 2, "models.m.label_smoothing = 2: must be a number in [0, 1)"),
    ("models.m.warmup", 1.5, "models.m.warmup = 1.5: must be a number in [0, 1]"),
    ("models.m", [1, 2], "models.m must be a mapping, got [1, 2]"),
    ("models", {}, "models: must name at least one model"),
    ("models", ["m"], 'models must be a mapping, got ["m"]'),
    ("val_size", 0, "val_size = 0: must be an integer >= 1"),
    ("train_subset", -5, "train_subset = -5: must be an integer >= 0"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_value_is_refused_with_key_value_and_what_is_allowed(path, value, message):
    with pytest.raises(ConfigError) as error:
        config.parse(with_change(path, value))
    assert message in str(error.value)
    assert str(error.value).startswith("params.yaml: ")


def parsed(params: dict) -> config.Model:
    return config.parse(params).models["m"]


def test_good_params_parse_with_defaults_and_overrides():
    model = parsed(with_change("models.m.batch_size", 32)).training
    assert (model.epochs, model.batch_size, model.optimizer, model.options) == (
        2,
        32,
        "adamw",
        {"hidden": [256, 128, 64], "dropout": 0.0},
    )


def test_params_hash_changes_with_any_setting():
    a = parsed(GOOD).evaluation.params_hash
    assert a == parsed(GOOD).evaluation.params_hash
    assert a != parsed(with_change("models.m.lr", 0.02)).evaluation.params_hash
    assert a != parsed(with_change("models.m.tta_views", 2)).evaluation.params_hash


def test_repository_params_are_valid():
    params = config.load(ROOT / "params.yaml")
    assert {"logreg", "mlp_small", "mlp", "cnn", "resnet18"} <= set(params.models)


@pytest.mark.parametrize("name", ["../../etc/x", "-rf", "_x", "a" * 65, "a b", ""])
def test_a_model_name_is_refused_unless_paths_and_stage_commands_can_carry_it(name):
    with pytest.raises(ConfigError, match="a model name is 1-64 letters"):
        config.parse({"models": {name: {"arch": "mlp", "lr": 1}}})


def test_unparseable_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        config.load(path)
    assert "\n" not in str(error.value)


def test_size_larger_than_data_is_refused():
    with pytest.raises(ConfigError, match="val_size = 70000: must not exceed the 59999 images"):
        data.check_size("val_size", 70000, 59999)


def test_a_global_the_model_overrides_leaves_its_settings_unchanged():
    own = with_change("models.m.epochs", 5)
    changed = copy.deepcopy(own)
    changed["epochs"] = 9
    assert parsed(own) == parsed(changed)
    assert parsed(with_change("epochs", 9)).training != parsed(GOOD).training


def test_an_evaluation_only_setting_is_not_a_training_setting():
    views = parsed(with_change("models.m.tta_views", 2))
    assert views.training == parsed(GOOD).training
    assert views.evaluation != parsed(GOOD).evaluation
    assert "batch_size" not in settings.field_names(settings.Evaluation)


def test_overriding_a_training_global_leaves_the_evaluation_settings_alone():
    moved = parsed(with_change("models.m.batch_size", 256))  # the global default, now written under the model
    assert moved.evaluation.overridden == () and moved.training.overridden == ("batch_size",)


def test_key_names_where_the_setting_was_written():
    assert parsed(GOOD).training.key("device") == "device"
    assert parsed(with_change("models.m.device", "cpu")).training.key("device") == "models.m.device"


def test_machine_check_names_the_key_as_written(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r'^params.yaml: device = "cuda": CUDA is not available'):
        device.check_machine(parsed(with_change("device", "cuda")).training)
    with pytest.raises(ConfigError, match=r'^params.yaml: models.m.precision = "fp16": fp16 needs CUDA'):
        device.check_machine(parsed(with_change("models.m.precision", "fp16")).evaluation)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r'^params.yaml: models.m.device = "cuda:1": only 1 CUDA device'):
        device.check_machine(parsed(with_change("models.m.device", "cuda:1")).training)
    device.check_machine(parsed(with_change("device", "cuda:0")).training)


def test_settings_read_back_from_configures_files_equal_the_parsed_ones(tmp_path):
    model = parsed(with_change("models.m.augment", {"flip": "alternate", "crop": 2}))
    for written in (model.training, model.evaluation):
        files.write_json(tmp_path / "s.json", asdict(written))
        assert type(written).read(tmp_path / "s.json") == written


def test_a_settings_file_from_older_code_is_refused_in_one_line(tmp_path):
    path = tmp_path / "m" / "train.json"
    files.write_json(path, {**asdict(parsed(GOOD).training), "warmup_epochs": 1})
    with pytest.raises(
        ConfigError, match=r"train.json: unreadable or out of date with the code \(run: python -m stages.configure m\)"
    ):
        settings.Training.read(path)


def test_a_plain_python_run_refuses_settings_older_than_params_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(GOOD))
    path = tmp_path / "configs" / "m" / "train.json"
    files.write_json(path, asdict(parsed(GOOD).training))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert settings.read_current(settings.Training, path, "m") == parsed(GOOD).training
    Path("params.yaml").write_text(yaml.safe_dump(with_change("models.m.lr", 0.5)))
    with pytest.raises(ConfigError, match="out of date with params.yaml"):
        settings.read_current(settings.Training, path, "m")
    monkeypatch.setenv("DVC_STAGE", "train@m")  # DVC reruns configure itself when params change
    assert settings.read_current(settings.Training, path, "m") == parsed(GOOD).training


def test_the_settings_classes_hold_exactly_the_declared_settings():
    declared = {*config.GLOBALS, *config.MODEL, "augment", "options", "name", "overridden"} - {"arch"}
    both = set(settings.field_names(settings.Training)) | set(settings.field_names(settings.Evaluation))
    assert both - {"arch", "params_hash"} == declared
    assert set(settings.field_names(settings.Augment)) == set(config.AUGMENT)


def test_the_params_comment_block_documents_every_setting_with_its_default():
    text = (ROOT / "params.yaml").read_text()
    assert text == schema.with_comment_block(text), "run: make schema"
    for declared in (config.GLOBALS, config.DATA, config.MODEL, config.AUGMENT, *config.ARCH_OPTIONS.values()):
        for name, setting in declared.items():
            if setting.default is not config.REQUIRED:
                assert f"#   {name}: {schema.shown(setting.default)} " in text.replace("#     ", "#   "), name


def test_the_committed_schema_is_the_generated_one():
    assert (ROOT / "params.schema.json").read_text() == schema.render(), "run: make schema"


def test_the_schema_knows_every_key_the_repository_params_use():
    described = json.loads(schema.render())
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) <= set(described["properties"])
    model = described["properties"]["models"]["additionalProperties"]
    for name, entry in raw["models"].items():
        assert set(entry) <= set(model["properties"]), name
        assert set(entry.get("augment", {})) <= set(model["properties"]["augment"]["properties"])
