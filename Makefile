# README.md's commands: `make run` and `make test` (each sets up .venv first), `make bench`
# (the smoke benchmark), `make lock` (refresh requirements.lock) and `make image`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TOOLS := .venv-tools

.PHONY: run test bench lock image

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/paperbot run

test: $(BIN)/.installed
	$(BIN)/pytest

# The documented smoke run of benchmarks/run.py: every benchmark at toy size, results in /tmp.
bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run --smoke --out /tmp/paperbot-bench

# The exact versions the container image installs: every dependency of pyproject.toml,
# resolved from PyPI, pinned in requirements.lock. Run after changing dependencies.
lock:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(TOOLS)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

# Build the container image, run it and check compose.yaml, where Docker is available.
image:
	bash deploy/smoke.sh
