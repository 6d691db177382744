# Two commands do everything on a fresh machine (Python 3.11+ is all it needs):
#   make repro   set up .venv if needed, then run the DVC pipeline (dvc repro)
#   make test    set up .venv if needed, then lint and run every test
# Both are idempotent: set-up reruns only when pyproject.toml or requirements.lock changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# Stage commands run as `python -m stages.X`: put the venv first on PATH for DVC.
RUN    := PATH="$(BIN):$$PATH"
# Every test, and the 15 slowest named at the end (where the suite's time goes).
PYTEST_ARGS ?= -m "" --durations=15

.PHONY: setup repro test test-quick lint gate bench ui notebook clean-venv plots-template lock lock-upgrade diff predict bench-robustness bench-pipeline stack-up stack-down stack-status

PIP    := $(BIN)/python -m pip --disable-pip-version-check
UV     := UV_NO_CONFIG=1 $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

# Exact versions and hashes from requirements.lock (refused when stale versus pyproject.toml),
# then the project itself, without touching its locked dependencies. uv installs them, at the
# lock's own pin for it (installed by pip, hashes checked): it downloads in parallel.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), \
		f"Python 3.11+ is needed, {sys.executable} is {sys.version.split()[0]}: make PYTHON=python3.11 ..."'
	@$(PYTHON) scripts/lock.py --check
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PYTHON) scripts/lock.py --uv-pin > $(VENV)/uv-pin.txt
	$(PIP) install --quiet --require-hashes -r $(VENV)/uv-pin.txt
	$(UV) --require-hashes -r requirements.lock
	$(UV) --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

# First check the file MNIST_LOCAL names, when set: DVC tracks neither the variable nor the file,
# so an up-to-date download would never read it (exit 2 when bad; says what dvc repro will do).
# After it, mark KILLED the MLflow runs a hard kill left RUNNING (DVC may have restored every
# stage from its run cache, opening no store); silent when there were none.
repro: setup
	@if [ -n "$$MNIST_LOCAL" ]; then $(RUN) python -m stages.download --check-local; fi
	$(RUN) dvc repro
	@$(RUN) python -m intro_cnn.commands.tracking --quiet

lint: setup
	$(BIN)/ruff check intro_cnn stages tests benchmarks scripts notebooks
	$(BIN)/ruff format --check intro_cnn stages tests benchmarks scripts notebooks

test: lint
	$(RUN) pytest $(PYTEST_ARGS)

test-quick: lint
	$(RUN) pytest

# GATE_ARGS="--baseline origin/main": the revision whose committed metrics max_drop compares with.
gate: setup
	$(RUN) python -m intro_cnn.commands.gate $(GATE_ARGS)

# How metrics and params moved against a git revision (BASE, default HEAD); DIFF_ARGS=--md for
# markdown.
BASE ?= HEAD
diff: setup
	@$(RUN) dvc metrics diff $(BASE) $(DIFF_ARGS)
	@$(RUN) dvc params diff $(BASE) $(DIFF_ARGS)

bench: setup
	$(RUN) python benchmarks/train_speed.py

# Classify your own images: make predict IMG=photo.jpg (several: IMG="a.png b.jpg").
predict: setup
	@test -n "$(IMG)" || { echo 'Name the image(s): make predict IMG=path/to/digit.png' >&2; exit 2; }
	$(RUN) python -m intro_cnn.commands.predict $(IMG)

# The whole pipeline cold in a fresh clone: wall time and peak memory per stage, beside the
# notebook's way in one plain script (BENCH_ARGS="--side pipeline --reuse-models": no training).
bench-pipeline: setup
	$(RUN) python benchmarks/pipeline_speed.py $(BENCH_ARGS)

bench-robustness: setup
	$(RUN) python benchmarks/robustness.py

# The store follows the repository when it is copied or moved (intro_cnn.commands.tracking relocates it
# and prints the address). UI_PORT=0 (the default) picks a free port. One worker process: mlflow's
# default four each import MLflow and, on a busy small machine, restart one another
# (benchmarks/ui_speed.py); UI_WORKERS=N for more.
UI_PORT ?= 0
UI_WORKERS ?= 1
ui: setup
	@port=$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", $(UI_PORT))); print(s.getsockname()[1])') && \
	$(RUN) python -m intro_cnn.commands.tracking --port $$port && \
	$(RUN) mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port $$port --workers $(UI_WORKERS)

# The companion notebook in Jupyter Lab (notebooks/; reads the pipeline's outputs, so `make repro`
# first): on 127.0.0.1, a free port (NOTEBOOK_ARGS="--port 8888" for another), the address and
# its token printed; Ctrl-C stops it.
notebook: setup
	$(RUN) python -m intro_cnn.commands.notebook $(NOTEBOOK_ARGS)

# A team's shared services on this machine: PostgreSQL + mlflow server + SeaweedFS S3
# (scripts/stack.py; README "Working as a team"). Then: eval "$$(.venv/bin/python scripts/stack.py env)"
stack-up: setup
	$(RUN) python scripts/stack.py up

stack-down:
	$(BIN)/python scripts/stack.py down

stack-status:
	$(BIN)/python scripts/stack.py status

clean-venv:
	rm -rf $(VENV)

# Rebuild plots/offline.html (DVC's plots page with vega inlined, for offline `dvc plots show`)
# from the versions pinned in plots/package-lock.json. Needs node and npm; the result is committed.
plots-template:
	cd plots && npm ci --ignore-scripts --no-audit --no-fund
	$(PYTHON) scripts/build_plots_template.py

# Re-resolve requirements.lock after editing pyproject.toml's dependencies (keeps every pin that
# still fits); lock-upgrade moves everything to the newest versions pyproject.toml allows.
$(BIN)/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet uv

lock: $(BIN)/uv
	$(BIN)/python scripts/lock.py

lock-upgrade: $(BIN)/uv
	$(BIN)/python scripts/lock.py --upgrade
