# The two commands of the README. Both create .venv (Python >= 3.10) and install segclr into it.
#   make demo   -> install, then train baseline + SegCLR UDA on the embedded data and write segclr-demo/
#   make test   -> install with test extras, then run the test suite (what .ci/run calls)
# On a CUDA machine, drop the CPU constraint: make demo CONSTRAINTS=

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints/cpu.txt
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
BIN := $(VENV)/bin

.PHONY: install install-dev demo test bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e ".[dev]"

demo: install
	$(BIN)/segclr demo --out segclr-demo

test: install-dev
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/python benchmarks/bench_train.py --out benchmarks/out

# Mutation testing of the core modules (benchmark-style, not CI; docs/testing.md). Some modules
# only: make mutation MODULES="metrics pairs"; on a busy machine: make mutation JOBS=1
MODULES ?=
JOBS ?= 2
mutation: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e ".[dev,mutation]"
	$(BIN)/python benchmarks/mutation.py --jobs $(JOBS) $(MODULES)

clean:
	rm -rf $(VENV) segclr-demo .pytest_cache
