# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install ketaweight, run the end-to-end demo
#   make test   - create .venv, install ketaweight with test extras, run the test suite
# Everything is installed from this repository's own files into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
PEERS_STAMP := $(VENV)/.peers-$(shell cat pyproject.toml | md5sum | cut -c1-12)
DEMO_OUT ?= demo-output

.PHONY: demo test bench validate install peers clean fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

$(PEERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]'
	rm -f $(VENV)/.peers-*
	touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/ketaweight demo --out $(DEMO_OUT)

# The report's browser test needs Debian's headless Chromium; install it once if we can (root + mirror),
# otherwise say so and let that test skip.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "note: chromium could not be installed (needs root and the Debian mirror); the browser test will skip"
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -q

bench: $(PEERS_STAMP)
	$(BIN)/python benchmarks/run_all.py

# Long fuzzing run: every test marked `fuzz`, 10,000 generated inputs per target (FUZZ_EXAMPLES to change),
# fresh random inputs each run; figures per target in fuzz-output/ (docs/reliability.md).
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	KETAWEIGHT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KETAWEIGHT_FUZZ_STATS=fuzz-output $(BIN)/python -m pytest -m fuzz -n 2 -q

validate: $(STAMP)
	$(BIN)/ketaweight validate estimators --out validation-output

clean:
	rm -rf $(VENV) $(DEMO_OUT) validation-output fuzz-output
