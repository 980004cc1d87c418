# Two entry points (see README): `make figures` (the main job) and `make test`.
# Both create the virtual environment first, so each works on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Offline datasets: $PRUNING_DATA_DIR if set, else ../shared/data beside the checkout when it
# exists (the project's machines); otherwise helpers.data downloads through keras.datasets.
PRUNING_DATA_DIR ?= $(abspath $(wildcard ../shared/data))
export PRUNING_DATA_DIR
export TF_CPP_MIN_LOG_LEVEL ?= 3

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: all figures test test-fast benchmarks clean-venv

all: figures

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Main job: execute every notebook on its default parameters (in place), regenerating
## figures/ and results/. Finished training runs come from results/cache.
figures: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(BIN)/papermill --cwd notebooks --progress-bar "$$nb" "$$nb" || exit 1; \
	done
	@# Second configurations (CIFAR-10 for 03, the clean variant of 05); the executed copies are kept as records.
	@echo "== notebooks/03_smgd.ipynb -p dataset cifar10"
	$(BIN)/papermill --cwd notebooks --progress-bar notebooks/03_smgd.ipynb results/03_smgd/03_smgd_cifar10.ipynb -p dataset cifar10
	@echo "== notebooks/05_knee_search.ipynb, clean variant: selection on a validation split (B22), convex filter"
	$(BIN)/papermill --cwd notebooks --progress-bar notebooks/05_knee_search.ipynb results/05_knee_search/05_knee_search_val_clean.ipynb \
	  -p select_on val -p protocol clean -y "{methods: [bisection, dichotomic, stochastic], knee_seeds: [0]}"

## Tests: unit tests, every notebook end to end on tiny parameters, and nbval on the stored outputs.
test: $(STAMP)
	$(BIN)/python -m pytest --nbval

## Unit tests only (no notebook execution).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not notebooks"

## Benchmarks against plain Keras, callback ITP and tfmot (tfmot runs in its own process under
## tf_keras), and TF vs JAX: writes results/benchmarks/*.csv. Run it alone on the machine: it times.
benchmarks: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python benchmarks/training_overhead.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/frontier.py

clean-venv:
	rm -rf $(VENV)
