# Two entry points (see README): `make figures` (the main job) and `make test`.
# Both create the virtual environment first, from the lock file, so each works on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements/lock.txt
BENCH_LOCK := requirements/bench-lock.txt
STAMP  := $(VENV)/.installed

# The data folder is resolved by helpers.paths.data_dir: $PRUNING_DATA_DIR, else ../shared/data
# beside the checkout, else keras.datasets downloads. Nothing to set here.
export TF_CPP_MIN_LOG_LEVEL ?= 3

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Executes a notebook into a temporary file, cleans it (no progress bars, timestamps or machine
# paths) and moves it over the destination only if every cell succeeded.
EXECUTE   := $(BIN)/python -m helpers.notebooks execute

.PHONY: all figures test test-fast benchmarks lock clean-venv

all: figures

# The pinned environment: every dependency from the lock, then the package itself (editable,
# without dependencies, so nothing outside the lock is installed).
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Regenerate the lock files from pyproject.toml with pip-tools (existing pins are kept unless
## `make lock UPGRADE=1`), and binder/requirements.txt from the lock.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
	  $(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml
	$(BIN)/pip-compile --quiet --extra test --extra bench --strip-extras --no-emit-index-url --no-emit-find-links \
	  $(if $(UPGRADE),--upgrade) --output-file $(BENCH_LOCK) pyproject.toml
	$(BIN)/python -m helpers.notebooks sync

## Main job: execute every notebook on its default parameters (in place), regenerating
## figures/ and results/. Finished training runs come from results/cache.
figures: $(STAMP)
	@$(BIN)/python -m helpers.data check  # every missing dataset at once, before any notebook runs
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(EXECUTE) "$$nb" || exit 1; \
	done
	@# Second configurations (CIFAR-10 for 03, the clean variant of 05); the executed copies are kept
	@# as records, and their outputs are committed (the variants of helpers/notebooks/manifest.py).
	@$(BIN)/python -m helpers.notebooks variants

## Tests: unit tests, every notebook end to end on tiny parameters, and nbval on the stored outputs
## (every printed table compared; only durations, progress bars and temporary paths are sanitised).
## Outputs go to a temporary folder (conftest.py): tests never write over tracked files. Without
## data, what needs it is skipped with one reason.
test: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg

## Unit tests only (no notebook execution).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not notebooks"

## Benchmarks against plain Keras, callback ITP and tfmot (tfmot runs in its own process under
## tf_keras), and TF vs JAX: writes results/benchmarks/*.csv. Run it alone on the machine: it times.
benchmarks: $(STAMP)
	$(BIN)/python -m pip install --quiet -r $(BENCH_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python benchmarks/training_overhead.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/frontier.py

clean-venv:
	rm -rf $(VENV)
