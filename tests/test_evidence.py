"""The evidence the docs show is generated from the trials log, and current."""

from pathlib import Path

from bench import tables

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_seed_tables_are_generated_from_the_trials_log_and_current():
    """`make docs` writes them from bench/trials.jsonl and params.yaml alone, so this holds on any CPU;
    after logging runs or changing a recipe, run it again."""
    for path, text in tables.generated(ROOT).items():
        assert (ROOT / path).read_text() == text, f"{path}: its seed tables are out of date (run make docs)"
