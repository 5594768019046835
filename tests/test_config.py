"""The settings' declarations (fmnist.core.settings) and the params.yaml parser (fmnist.params)."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from fmnist.core import files, settings
from fmnist.core.errors import ConfigError
from fmnist.data import splits as data
from fmnist.model import device
from fmnist.params import parse, schema
from tools.project import set_dotted

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"epochs": 2, "models": {"m": {"arch": "mlp", "lr": 0.01}}}


class Deleted:
    """The value of a key removed from params.yaml; its repr names it in test ids."""

    def __repr__(self) -> str:
        return "deleted"


DELETE = Deleted()


def with_change(path: str, value) -> dict:
    """GOOD with the dotted `path` set to value (or removed when value is DELETE)."""
    params = copy.deepcopy(GOOD)
    if value is not DELETE:
        return set_dotted(params, path, value)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    del node[last]
    return params


BAD = [
    ("models.m.arch", "transformer", 'models.m.arch = "transformer": must be one of logreg, mlp, cnn, resnet18'),
    ("models.m.arch", [1], "models.m.arch = [1]: must be one of logreg, mlp, cnn, resnet18"),
    ("models.m.optimizer", "lion", 'models.m.optimizer = "lion": must be one of sgd, adam, adamw'),
    ("models.m.scheduler", "step", 'models.m.scheduler = "step": must be one of onecycle, cosine, constant'),
    ("device", "tpu", 'device = "tpu": must be auto, cpu, cuda or cuda:N'),
    ("precision", "fp8", 'precision = "fp8": must be one of auto, fp32, bf16, fp16'),
    ("batch_size", 0, "batch_size = 0: must be an integer in [1, 65536]"),
    ("batch_size", "big", 'batch_size = "big": must be an integer'),
    ("batch_size", 12.5, "batch_size = 12.5: must be an integer"),
    ("epochs", -1, "epochs = -1: must be an integer in [1, 10000]"),
    ("epochs", True, "epochs = true: must be an integer"),
    # A global overridden under a model is named where it was written.
    ("models.m.device", "gpu", 'models.m.device = "gpu": must be auto, cpu, cuda or cuda:N'),
    ("models.m.batch_size", 0, "models.m.batch_size = 0: must be an integer in [1, 65536]"),
    ("models.m.epochs", 0.5, "models.m.epochs = 0.5: must be an integer in [1, 10000]"),
    ("models.m.compile", "yes", 'models.m.compile = "yes": must be true or false'),
    ("models.m.lr", -0.1, "models.m.lr = -0.1: must be a number in (0, 10]"),
    ("models.m.lr", 0, "models.m.lr = 0: must be a number in (0, 10]"),
    ("models.m.lr", "fast", 'models.m.lr = "fast": must be a number'),
    ("models.m.lr", DELETE, "models.m.lr: required key missing (peak learning rate)"),
    ("models.m.arch", DELETE, "models.m.arch: required key missing"),
    ("models.m.learning_rate", 0.1, "models.m.learning_rate: unknown key (allowed: "),
    ("models.m.channels", [8], "models.m.channels: unknown key"),  # a cnn option on an mlp
    ("models.m.val_size", 100, "models.m.val_size: unknown key"),  # splitting the data is not a model's
    ("typo_key", 1, "typo_key: unknown key"),
    ("models.m.hidden", 128, "models.m.hidden = 128: must be a non-empty list of integers in [1, 16384]"),
    (
        "models.m.hidden",
        [128, 2000000000],
        "models.m.hidden = [128, 2000000000]: must be a non-empty list of integers in [1, 16384]",
    ),
    ("models.m.hidden", {"a": 1}, 'models.m.hidden = {"a": 1}: must be a non-empty list'),
    ("models.m.augment", [1], "models.m.augment = [1]: must be a mapping"),
    (
        "models.m.augment",
        {"rotate": 10},
        "models.m.augment.rotate: unknown key (allowed: brightness, contrast, crop, erase, flip)",
    ),
    ("models.m.augment", {"crop": -1}, "models.m.augment.crop = -1: must be an integer in [0, 14]"),
    ("models.m.augment", {"flip": 1}, "models.m.augment.flip = 1: must be one of true, false, alternate"),
    ("models.m.tta_views", 3, "models.m.tta_views = 3: must be one of 1, 2, 6"),
    ("models.m.dropout", 1.0, "models.m.dropout = 1.0: must be a number in [0, 1)"),
    ("models.m.label_smoothing", 2, "models.m.label_smoothing = 2: must be a number in [0, 1)"),
    ("models.m.warmup", 1.5, "models.m.warmup = 1.5: must be a number in [0, 1]"),
    ("models.m", [1, 2], "models.m = [1, 2]: must be a mapping"),
    ("models", {}, "models = {}: must be a non-empty mapping"),
    ("models", ["m"], 'models = ["m"]: must be a non-empty mapping'),
    ("models", DELETE, "models: required key missing (one entry per model"),
    ("models.m.tta_views", True, "models.m.tta_views = true: must be one of 1, 2, 6"),  # true == 1 in Python
    ("models.m.lr", float("nan"), "models.m.lr = nan: must be a number in (0, 10]"),
    ("val_size", -1, "val_size = -1: must be an integer >= 0"),
    ("train_subset", -5, "train_subset = -5: must be an integer >= 0"),
    ("nproc", 3, "batch_size = 256: must be a multiple of nproc (3)"),
    ("models.m.nproc", 3, "batch_size = 256: must be a multiple of nproc (3)"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_value_is_one_line_naming_the_key_as_written_and_what_is_allowed(path, value, message):
    with pytest.raises(ConfigError) as error:
        parse.parse(with_change(path, value))
    assert str(error.value).startswith(f"params.yaml: {message}")
    assert "\n" not in str(error.value)


def test_a_batch_size_the_model_sets_is_named_under_the_model():
    with pytest.raises(ConfigError, match=r"^params.yaml: models.m.batch_size = 100: must be a multiple of nproc \(3"):
        parse.parse(set_dotted(with_change("nproc", 3), "models.m.batch_size", 100))


def parsed(params: dict) -> parse.ModelSettings:
    return parse.parse(params).models["m"]


def test_good_params_parse_with_defaults_and_overrides():
    recipe = parsed(with_change("models.m.batch_size", 32)).recipe
    assert (recipe.epochs, recipe.batch_size, recipe.optimizer, recipe.options, recipe.augment) == (
        2,
        32,
        "adamw",
        {"hidden": [256, 128, 64], "dropout": 0.0},
        settings.Augment(),
    )
    assert parse.parse(GOOD).data == settings.Data(seed=0, val_size=10000)


def test_repository_params_are_valid():
    params = parse.load(ROOT / "params.yaml")
    assert {"logreg", "mlp_small", "mlp", "cnn", "resnet18"} <= set(params.models)


@pytest.mark.parametrize("name", ["../../etc/x", "-rf", "_x", "a" * 65, "a b", ""])
def test_a_model_name_is_refused_unless_paths_and_stage_commands_can_carry_it(name):
    with pytest.raises(ConfigError, match="a model name is 1-64 letters"):
        parse.parse({"models": {name: {"arch": "mlp", "lr": 1}}})


def test_unparseable_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        parse.load(path)
    assert "\n" not in str(error.value)


def test_a_yaml_error_names_its_line_and_column(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nmodels:\n  a:\n\tarch: logreg\n")  # a tab in the indentation
    with pytest.raises(ConfigError) as error:
        parse.load(path)
    assert str(error.value).startswith(f"{path}: line 4, column 1: not valid YAML (found character '\\t'")


@pytest.mark.parametrize("groups", [5, 6])
def test_a_cnn_too_deep_for_a_28_pixel_picture_is_refused_by_configure(groups):
    channels = [8] * groups
    with pytest.raises(ConfigError) as error:
        parse.parse({"models": {"deep": {"arch": "cnn", "lr": 1, "channels": channels}}})
    assert str(error.value).startswith(f"params.yaml: models.deep.channels = {channels}: {groups} conv groups")
    assert "27 -> 13 -> 6 -> 3 -> 1 -> 0" in str(error.value) and str(error.value).endswith("at most 4 fit")
    parse.parse({"models": {"deep": {"arch": "cnn", "lr": 1, "channels": [8] * 4}}})  # 1 x 1 left: fits


def test_size_larger_than_data_is_refused():
    with pytest.raises(ConfigError, match="val_size = 70000: must not exceed the 59999 images"):
        data.check_size("val_size", 70000, 59999)


def test_a_global_the_model_overrides_leaves_its_settings_unchanged():
    own = with_change("models.m.epochs", 5)
    assert parsed(own) == parsed(set_dotted(copy.deepcopy(own), "epochs", 9))
    assert parsed(with_change("epochs", 9)).recipe != parsed(GOOD).recipe


def test_a_global_default_written_under_a_model_changes_nothing():
    moved = parsed(with_change("models.m.batch_size", 256))  # the declared default, now written under the model
    assert moved.recipe == parsed(GOOD).recipe and moved.evaluation == parsed(GOOD).evaluation
    assert moved.recipe.fingerprint() == parsed(GOOD).recipe.fingerprint()


def test_an_evaluation_only_setting_is_not_a_training_setting():
    views = parsed(with_change("models.m.tta_views", 2))
    assert views.recipe == parsed(GOOD).recipe and views.recipe.fingerprint() == parsed(GOOD).recipe.fingerprint()
    assert views.evaluation == settings.Evaluation(tta_views=2) != parsed(GOOD).evaluation
    recipe_keys = {f.name for f in dataclasses.fields(settings.Recipe)}
    assert "tta_views" not in recipe_keys and "val_size" not in recipe_keys


def test_changes_are_the_required_keys_and_what_differs_from_the_defaults_as_dotted_keys():
    cnn = {"arch": "cnn", "lr": 0.5, "channels": [8, 16], "augment": {"flip": "alternate"}, "whiten": True}
    recipe = parse.parse({"models": {"cnn": cnn}}).models["cnn"].recipe
    assert recipe.changes() == {"arch": "cnn", "lr": 0.5, "channels": [8, 16], "augment.flip": "alternate"}
    assert recipe.fingerprint() == settings.digest(recipe.changes())
    other = parse.parse({"models": {"cnn": {**cnn, "channels": [8, 32]}}}).models["cnn"].recipe
    assert other.fingerprint() != recipe.fingerprint()


def with_one_more_setting() -> type:
    """Recipe as it would be with one more setting whose default does nothing, declared last."""
    new = settings.setting(int, "a setting nobody has set yet", ge=0, le=5)
    return dataclasses.make_dataclass(
        "Recipe", [("new_setting", new, 0)], bases=(settings.Recipe,), frozen=True, kw_only=True
    )


def test_a_new_setting_at_its_default_changes_no_models_key(monkeypatch):
    """Logged trials and resume points are keyed on the fingerprint: adding a setting must not void them."""
    before = parse.load(ROOT / "params.yaml").models
    # Swapped in where parse and Recipe.changes both look, as adding the field to Recipe itself would.
    monkeypatch.setattr(settings, "Recipe", with_one_more_setting())
    after = parse.load(ROOT / "params.yaml").models
    assert set(after) == set(before)
    for name, model in after.items():
        assert model.recipe.new_setting == 0
        assert model.recipe.changes() == before[name].recipe.changes(), name
        assert model.recipe.fingerprint() == before[name].recipe.fingerprint(), name
        set_to_one = dataclasses.replace(model.recipe, new_setting=1)
        assert set_to_one.changes() == {**before[name].recipe.changes(), "new_setting": 1}


def test_a_stage_names_a_global_with_its_model_and_a_models_own_key_in_full():
    assert parsed(GOOD).recipe.key("device") == "device (models.m)"
    assert parsed(GOOD).recipe.key("lr") == "models.m.lr"


def machine_check(path: str, value) -> None:
    device.check_machine(parsed(with_change(path, value)).recipe)


def test_machine_check_names_the_key_and_the_model(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r'^params.yaml: device \(models.m\) = "cuda": CUDA is not available'):
        machine_check("device", "cuda")
    with pytest.raises(ConfigError, match=r'^params.yaml: precision \(models.m\) = "fp16": fp16 needs CUDA'):
        machine_check("models.m.precision", "fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r'^params.yaml: device \(models.m\) = "cuda:1": only 1 CUDA device'):
        machine_check("models.m.device", "cuda:1")
    machine_check("device", "cuda:0")


def test_settings_read_back_from_configures_files_equal_the_parsed_ones(tmp_path):
    params = parse.parse(with_change("models.m.augment", {"flip": "alternate", "crop": 2}))
    model = params.models["m"]
    for written in (model.recipe, model.evaluation, params.data):
        files.write_json(tmp_path / "s.json", dataclasses.asdict(written))
        assert type(written).read(tmp_path / "s.json") == written


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "missing"),
        ("{", "unreadable or out of date (JSONDecodeError"),
        ('{"name": "m", "arch": "mlp", "lr": 0.1, "augment": {}, "a_key_older_code_wrote": 1}', "unreadable or out"),
        ('{"name": "m"}', "unreadable or out of date (KeyError"),
    ],
)
def test_a_missing_or_damaged_settings_file_is_one_line_with_the_fix(tmp_path, content, problem):
    path = tmp_path / "m" / "train.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        settings.Recipe.read(path)
    assert str(error.value).startswith(f"{path}: {problem}")
    assert str(error.value).endswith("run: python -m stages.configure)")


def test_the_params_comment_block_documents_every_setting_with_its_default():
    text = (ROOT / "params.yaml").read_text()
    assert text == schema.with_comment_block(text), "run: make schema"
    block = schema.comment_block().replace("#     ", "#   ")
    classes = (settings.ParamsFile, settings.Recipe, settings.Evaluation, settings.Augment)
    for cls in (*classes, *settings.ARCH_OPTIONS.values()):
        for f in dataclasses.fields(cls):
            if f.name in ("name", "options", "augment", "models"):  # not settings, or sections
                continue
            value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            written = "(required)" if value is dataclasses.MISSING else schema.shown(value)
            assert f"#   {f.name}: {written} " in block, f.name


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


def test_gpu_checks_recipe_made_without_configure_is_the_one_configure_makes():
    from bench import gpu_check

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    default = parse.parse(raw).models["resnet18"].recipe
    for dotted, value in gpu_check.RESNET_FULL.items():
        set_dotted(raw, f"models.resnet18.{dotted}", value)
    assert gpu_check.full_resolution(default) == parse.parse(raw).models["resnet18"].recipe
