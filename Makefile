# Two entry points for a fresh machine with only python3:
#   make demo   - train, compile, calibrate, QAT and export on the bundled digits example
#   make test   - the whole test suite (installs the yaml-language-server for the editor tests)
# For contributors: make lint (ruff, mypy, import-linter contracts; .ci/run calls it before the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qplan-installed

.PHONY: demo test lint bench venv clean

venv: $(STAMP)

# torch is pinned to the CPU build 2.13.0 first: a looser requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

demo: $(STAMP)
	$(BIN)/qplan demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every benchmark script, full runs (long: tens of minutes); each rewrites its whole file in
# benchmarks/results/ and keeps the analysis below the file's marker line.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_capture.py -o benchmarks/results/capture.md
	$(BIN)/python benchmarks/bench_compile.py -o benchmarks/results/compile.md
	$(BIN)/python benchmarks/bench_recompile.py -o benchmarks/results/recompile.md
	$(BIN)/python benchmarks/bench_demo.py -o benchmarks/results/demo.md
	$(BIN)/python benchmarks/bench_qat.py -o benchmarks/results/qat.md
	$(BIN)/python benchmarks/bench_validate.py -o benchmarks/results/validate.md
	$(BIN)/python benchmarks/fake_quant_micro.py -o benchmarks/results/fake_quant_micro.md
	$(BIN)/python benchmarks/bench_zoo.py -o benchmarks/results/zoo.md

test: $(STAMP) node_modules/.package-lock.json
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
