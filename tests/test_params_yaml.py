"""params.yaml's YAML: what loaders take silently or choke on is refused in one line, in bounded time and memory."""

import time

import pytest

from fmnist.core.errors import ConfigError
from fmnist.params import parse, safe_yaml

MODEL = "models:\n  m:\n    arch: logreg\n    lr: 0.1\n"


def refusal(text: str | bytes) -> str:
    with pytest.raises(ConfigError) as error:
        safe_yaml.load(text.encode() if isinstance(text, str) else text)
    return str(error.value)


@pytest.mark.parametrize(
    "text, key, lines",
    [
        ("seed: 0\nseed: 1\n" + MODEL, "seed", (1, 2)),
        (MODEL + "    lr: 0.2\n", "models.m.lr", (4, 5)),
        (MODEL + "    augment: {crop: 1, flip: true, crop: 2}\n", "models.m.augment.crop", (5, 5)),
    ],
)
def test_a_key_written_twice_names_the_key_and_both_lines(text, key, lines):
    assert refusal(text) == f"params.yaml: {key} written twice, on lines {lines[0]} and {lines[1]} (keep one)"


def test_an_alias_that_contains_itself_is_refused():
    assert refusal("seed: &loop [*loop]\n" + MODEL) == "params.yaml: line 1: an alias that contains itself"


def test_exponentially_nested_aliases_are_refused_quickly_without_quoting_the_expansion():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]  # 10^30 values
    started = time.perf_counter()
    message = refusal("\n".join(lines) + "\n" + MODEL)
    assert time.perf_counter() - started < 5
    assert "expands to more than 100,000 values" in message and len(message) < 200


def test_a_file_that_is_not_utf8_names_its_line():
    assert refusal(b"seed: 0\n# caf\xe9\n" + MODEL.encode()).startswith("params.yaml: line 2: not UTF-8 (byte 0xe9)")


def test_nesting_too_deep_for_settings_is_one_line():
    assert refusal("seed: " + "[" * 5000 + "]" * 5000 + "\n") == "params.yaml: nested too deeply to be settings"


def test_anchors_and_merge_keys_that_expand_reasonably_are_fine():
    text = "shared: &aug {crop: 2, flip: true}\n" + MODEL + "    augment: *aug\n  n:\n    <<: {arch: logreg, lr: 0.3}\n"
    loaded = safe_yaml.load(text.encode())
    assert loaded["models"]["m"]["augment"] == {"crop": 2, "flip": True}
    assert loaded["models"]["n"] == {"arch": "logreg", "lr": 0.3}


def test_an_error_quoting_a_huge_value_cuts_it_short(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"seed: {list(range(5000))}\n" + MODEL)
    with pytest.raises(ConfigError) as error:
        parse.load(params)
    assert len(str(error.value)) < 150 and "..." in str(error.value)


def test_params_are_read_as_yaml_1_2_like_dvc_reads_them(tmp_path):
    """1e-3 is a number (YAML 1.1 loaders read a string), and yes is a string, not true."""
    params = tmp_path / "params.yaml"
    params.write_text(MODEL.replace("lr: 0.1", "lr: 1e-3"))
    assert parse.load(params).models["m"].recipe.lr == 0.001
    params.write_text(MODEL + "    compile: yes\n")
    with pytest.raises(ConfigError, match='^params.yaml: models.m.compile = "yes": must be true or false$'):
        parse.load(params)
