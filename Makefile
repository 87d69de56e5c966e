# methbuild — `make demo` and `make test` work on a fresh machine with nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO   ?= demo-out

.PHONY: demo test bench venv clean help

help:
	@echo "make demo   - build the offline demo datasets into $(DEMO)/"
	@echo "make test   - run the test suite"
	@echo "make bench  - run the benchmarks in benchmarks/ (slow; prints ratios)"

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
