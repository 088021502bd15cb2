# The two set-up commands: `make demo` (environment, samples, one run) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all demo test samples bench clean venv

all: demo

$(STAMP): pyproject.toml setup.py $(wildcard legorun/native/*.c)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

samples:
	$(MAKE) -C samples

demo: venv samples
	@echo '$$ .venv/bin/legorun samples/build/hello'
	@$(VENV)/bin/legorun samples/build/hello
	@echo '$$ .venv/bin/legorun --excache 4M --stats samples/build/bigwalk'
	@$(VENV)/bin/legorun --excache 4M --stats samples/build/bigwalk

test: venv samples
	$(PY) -m pytest

bench: venv samples
	$(PY) -m legorun.bench

clean:
	$(MAKE) -C samples clean
	rm -rf build *.egg-info legorun/native/*.so .pytest_cache
