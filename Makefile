# Local development. Needs only Python 3.11+ on the machine; everything else comes from pip.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test schemas bench bench-intake bench-matching bench-deadlines bench-notify bench-reporting clean-data

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependencies change.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[local,test,bench]'
	touch $@

$(VENV): $(PY)

run: install
	$(PY) -m devstack.run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

schemas: install
	$(PY) -m schemas

bench: install
	$(PY) -m bench

bench-intake: install
	$(PY) -m bench intake

bench-matching: install
	$(PY) -m bench matching

bench-deadlines: install
	$(PY) -m bench deadlines

bench-notify: install
	$(PY) -m bench notify

bench-reporting: install
	$(PY) -m bench reporting

clean-data:
	rm -rf .data
