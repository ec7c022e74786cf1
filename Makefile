# Quick start: `make demo` and `make test` on a fresh machine. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-slow bench clean

$(STAMP): pyproject.toml constraints.txt scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rlcyclegan demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow tests

bench: $(STAMP)
	$(BIN)/rlcyclegan bench env --json

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
