# The two commands of the README. Both create .venv (Python >= 3.10) and install segclr into it.
#   make demo   -> install, then train baseline + SegCLR UDA on the embedded data and write segclr-demo/
#   make test   -> install with test extras, then run the test suite (what .ci/run calls)
# On a CUDA machine, drop the CPU constraint: make demo CONSTRAINTS=

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints/cpu.txt
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
BIN := $(VENV)/bin

.PHONY: install install-dev demo test bench mutation clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e ".[dev]"

demo: install
	$(BIN)/segclr demo --out segclr-demo

test: install-dev browser
	$(BIN)/python -m pytest -q

# The HTML report's browser test (tests/inference/test_report_browser.py) needs Chromium. When it is
# missing and we are root with apt-get, Debian's chromium is installed quietly (about 30 s); otherwise,
# or if that fails, the test is skipped and says why. Never fails the build.
APT := DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -qq -o=Dpkg::Use-Pty=0
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    echo "installing chromium (apt-get) for the HTML report's browser test" && \
	    { $(APT) install -y --no-install-recommends chromium >/dev/null 2>&1 || \
	      { $(APT) update >/dev/null 2>&1 && $(APT) install -y --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the HTML report's browser test will be skipped"

bench: install
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/segclr bench --out benchmarks/out

# Mutation testing of the core modules (benchmark-style, not CI; docs/testing.md). Some modules
# only: make mutation MODULES="metrics pairs"; on a busy machine: make mutation JOBS=1
MODULES ?=
JOBS ?= 2
mutation: $(BIN)/python
	$(BIN)/pip install -q $(PIP_C) -e ".[dev,mutation]"
	$(BIN)/python benchmarks/mutation.py --jobs $(JOBS) $(MODULES)

clean:
	rm -rf $(VENV) segclr-demo .pytest_cache
