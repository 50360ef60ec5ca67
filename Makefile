# itpump: every target that needs the virtual environment builds it first, so a fresh clone
# needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOARD ?= rpi_pico
PORT ?=

.PHONY: setup test lint demo bench flash clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check host_tools tests bench firmware boards

test: $(STAMP) lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) bench/demo.py

bench: $(STAMP)
	$(PY) bench/run.py

flash: $(STAMP)
	$(VENV)/bin/pumpctl flash --board $(BOARD) $(if $(PORT),--port $(PORT))

clean:
	rm -rf $(VENV) .vboard build *.egg-info host_tools/*.egg-info
