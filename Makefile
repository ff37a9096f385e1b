# greenprune: `make demo` runs the study end to end; `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.greenprune-installed
DEMO_SERVE ?= 1
DEMO_FILE ?= experiments/demo.yaml
PYTEST_ARGS ?=
# Tests run in parallel, one worker per core (pytest-xdist), costliest first; each file stays on
# one worker (tests/conftest.py schedules them) so a module's stack or server is started once.
# PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= auto

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint protos check-protos format bench venv up down clean compose-test

# The virtual environment: torch first and pinned (a CPU build), then the project.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

# google/rpc/status.proto comes from googleapis-common-protos, so imports resolve offline.
protos/google/rpc/status.proto: $(STAMP)
	@mkdir -p $(@D)
	@cp "$$($(PY) -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(m.__file__))')/status.proto" $@

protos: protos/google/rpc/status.proto
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. \
	  $$(find protos/greenprune -name '*.proto' | sort)

lint: protos/google/rpc/status.proto
	cd protos && ../$(BIN)/buf lint
	protos/check-breaking.sh $(abspath $(BIN))/buf
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The reference model is built (or found current) first, with every core: under pytest-xdist a
# worker's build would get one core while the other worker waited for it.
test: lint
	$(BIN)/greenprune reference-model build
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=10 $(PYTEST_ARGS)

# Every bench in full (the GPU one where CUDA exists): one table, also in artifacts/bench.json.
# BENCH_ARGS="--quick" for the quick modes, BENCH_ARGS="ray_overhead" for one bench.
BENCH_ARGS ?=
bench: venv
	$(PY) -m bench $(BENCH_ARGS)

up: venv
	$(BIN)/greenprune up

down: venv
	$(BIN)/greenprune down

# The demo: reference model, local stack, the experiment, the table, the HTML report (and its
# figures as SVG and PNG), then the app.
DEMO_REPORT ?= artifacts/demo-report.html
demo: venv
	$(BIN)/greenprune reference-model build
	$(BIN)/greenprune up
	$(BIN)/greenprune run $(DEMO_FILE) || { $(BIN)/greenprune down; exit 1; }
	$(BIN)/greenprune report --file $(DEMO_FILE) --html $(DEMO_REPORT) \
	  --figures $(dir $(DEMO_REPORT))demo-figures > /dev/null || { $(BIN)/greenprune down; exit 1; }
	@if [ "$(DEMO_SERVE)" = "1" ]; then \
	  echo "The app is at $$($(BIN)/greenprune status --app-url). Ctrl-C stops the stack."; \
	  echo "The HTML report is at $(abspath $(DEMO_REPORT)) (open it in any browser, offline)."; \
	  trap '$(BIN)/greenprune down' INT TERM EXIT; while true; do sleep 3600; done; \
	else \
	  $(BIN)/greenprune down; \
	  echo "The HTML report is at $(abspath $(DEMO_REPORT)) (open it in any browser, offline)."; \
	fi

# The compose stack for real with podman: build, start, run the demo, restart, tear down
# (deploy/compose-test.sh; KEEP_IMAGES=1 keeps the image it built).
compose-test: venv
	deploy/compose-test.sh

clean:
	rm -rf .state .pytest_cache .ruff_cache artifacts
