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
# axe-core (npm) for the clinic service's accessibility check, injected into pages by Playwright.
AXE_DIR := .cache/axe
AXE     := $(AXE_DIR)/node_modules/axe-core/axe.min.js

.PHONY: demo test fuzz bench validate install peers clean

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
	$(BIN)/ketaweight demo --out $(DEMO_OUT) --replace

# The report's browser test needs Debian's headless Chromium, the OMOP import tests a throwaway PostgreSQL
# server from Debian's postgresql binaries; install them once if we can (root + mirror), otherwise say so
# and let those tests skip.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "note: chromium could not be installed (needs root and the Debian mirror); the browser test will skip"
	@test -f $(AXE) || npm install --silent --no-audit --no-fund --prefix $(AXE_DIR) axe-core@4 >/dev/null 2>&1 || \
	  echo "note: axe-core could not be installed from npm; the clinic service's accessibility check will skip"
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || \
	  echo "note: postgresql could not be installed (needs root and the Debian mirror); the PostgreSQL import tests will skip"
	@command -v java >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >/dev/null 2>&1 || \
	  echo "note: Java 17 could not be installed (needs root and the Debian mirror); the Spark engine tests will skip"
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

# The fuzzers' long run: 10,000 generated inputs per target (docs/reliability.md); minutes to hours.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),10000) $(BIN)/python -m pytest -q -p no:randomly -k fuzz tests

bench: $(PEERS_STAMP)
	$(BIN)/python benchmarks/run_all.py

validate: $(STAMP)
	$(BIN)/ketaweight validate estimators --out validation-output

clean:
	rm -rf $(VENV) $(DEMO_OUT) validation-output
