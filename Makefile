# The README's two commands: `make repro` runs the whole pipeline, `make test` runs the tests.
# Both create the virtual environment from requirements.txt on first use.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast pr-report cnn95 schema docs bench gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .   # the `fmnist` command
	$(BIN)/python -m tools.compare.vega   # dvc plots show and diff draw offline
	touch $@

# Offline, the first run gets Debian's copy of Fashion-MNIST (tools/offline.py says so when it does).
repro: setup
	python -m tools.offline
	dvc repro

# Two workers, a test file each at a time (the longest first: tests/conftest.py): the DVC tests
# share one module-scoped repository.
test: setup
	python -m pytest -q -n 2 --dist loadfile

# The edit-test loop: everything but the end-to-end tests, in under a minute.
test-fast: setup
	python -m pytest -q -m "not e2e"

# The pull-request report, as CI comments it: the models this commit changes against BASE, each
# retrained here beside its base (like for like) and set against its spread over seeds.
BASE ?= main
pr-report: setup
	python -m tools.compare --base $(BASE) --out report

# The cnn to 95% (bench/cnn95.py, docs/results.md): one DVC experiment that trains the cnn alone
# with its overrides, on all 60,000 training images; the default pipeline does not train it.
cnn95: setup
	python -m bench.cnn95

# After changing a setting's declaration (fmnist/core/settings.py): params.yaml's comment block and the schema.
schema: setup
	python -m fmnist.params.schema

# After logging runs in bench/trials.jsonl or changing a recipe: the seed tables of README.md and docs/results.md.
docs: setup
	python -m bench.tables

bench: setup
	python -m bench.speed mlp
	python -m bench.speed cnn
	python -m bench.roofline
	python -m bench.pipeline

# On a GPU machine, with or without the virtual environment (such machines often carry torch but
# not dvc): the CUDA tests, the default pipeline twice as plain Python, the full-resolution ResNet-18.
gpu-check:
	python -m bench.gpu_check
