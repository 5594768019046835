"""The evidence the docs show is generated from the trials log, and current."""

from pathlib import Path

from bench import log, tables
from fmnist.core import settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_seed_tables_are_generated_from_the_trials_log_and_current():
    """`make docs` writes them from bench/trials.jsonl and params.yaml alone, so this holds on any CPU;
    after logging runs or changing a recipe, run it again."""
    for path, text in tables.generated(ROOT).items():
        assert (ROOT / path).read_text() == text, f"{path}: its seed tables are out of date (run make docs)"


def test_a_superseded_run_is_never_taken_for_a_run_of_todays_code():
    key = {"model": "resnet18", "changes": {"epochs": 3}, "dtype": "torch.bfloat16"}
    old = key | {"test": 0.91, "superseded": "computed its dead kernel taps"}
    assert log.recorded([old], key, test=True) is None
    assert log.recorded([old, key | {"test": 0.92}], key, test=True)["test"] == 0.92


def test_a_run_on_another_split_of_the_data_is_never_taken_for_one_on_the_prepared_splits():
    prepared = {"model": "cnn", "changes": {"epochs": 18}, "dtype": "torch.bfloat16"}
    all_60k = log.key(settings.Recipe(name="cnn", arch="cnn", lr=0.5), "torch.bfloat16", val_size=0)
    assert all_60k["val_size"] == 0
    full = prepared | {"val_size": 0}
    assert log.recorded([full | {"test": 0.95}], prepared, test=True) is None
    assert log.recorded([prepared | {"test": 0.94}], full, test=True) is None
    assert log.recorded([prepared | {"test": 0.94}, full | {"test": 0.95}], full, test=True)["test"] == 0.95
