# methbuild — `make demo` and `make test` work on a fresh machine with nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO   ?= demo-out
DATASETS ?= datasets
MET    ?= met
MET_API ?=
API_ARG = $(if $(MET_API),--api-url $(MET_API),)

.PHONY: demo test bench venv clean help meth-medium meth-cultures meth-period meth-sr meth-all

help:
	@echo "make demo   - build the offline demo datasets into $(DEMO)/"
	@echo "make test   - run the test suite"
	@echo "make bench  - run the benchmarks in benchmarks/ (slow; prints ratios)"
	@echo "make meth-medium|meth-cultures|meth-period|meth-sr|meth-all - full MetH builds from the real Met"
	@echo "            (MET_API=URL for another API, DATASETS=DIR for the output, MET=DIR for the crawl state)"

# The venv is (re)installed when missing or when pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/methbuild demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache

# Full MetH builds against the real Met (hours: tens of thousands of original images, fetched politely).
meth-medium meth-cultures meth-period meth-sr: $(STAMP)
	$(BIN)/methbuild build $@ --out $(DATASETS) --met $(MET) $(API_ARG)

meth-all: meth-medium meth-cultures meth-period meth-sr
