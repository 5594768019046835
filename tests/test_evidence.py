"""The evidence the docs show is generated from the trials log, and current."""

from pathlib import Path

from bench import log, tables

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
