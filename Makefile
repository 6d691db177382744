# Two commands do everything on a fresh machine (Python 3.11+ is all it needs):
#   make repro   set up .venv if needed, then run the DVC pipeline (dvc repro)
#   make test    set up .venv if needed, then lint and run every test
# Both are idempotent: set-up reruns only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# Stage commands run as `python -m stages.X`: put the venv first on PATH for DVC.
RUN    := PATH="$(BIN):$$PATH"
PYTEST_ARGS ?= -m ""

.PHONY: setup repro test test-quick lint gate bench ui clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), \
		f"Python 3.11+ is needed, {sys.executable} is {sys.version.split()[0]}: make PYTHON=python3.11 ..."'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

repro: setup
	$(RUN) dvc repro

lint: setup
	$(BIN)/ruff check stages tests benchmarks
	$(BIN)/ruff format --check stages tests benchmarks

test: lint
	$(RUN) pytest $(PYTEST_ARGS)

test-quick: lint
	$(RUN) pytest

gate: setup
	$(RUN) python -m stages.gate

bench: setup
	$(RUN) python benchmarks/train_speed.py

ui: setup
	$(RUN) mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db)

clean-venv:
	rm -rf $(VENV)
