# itpump: every target that needs the virtual environment builds it first, so a fresh clone
# needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOARD ?= rpi_pico
PORT ?=

.PHONY: setup test lint demo bench flash firmware clean screenshots

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Type stubs for firmware/ and boards/: plain .pyi files mypy reads from a folder of their own.
TYPINGS := .typings/.installed
$(TYPINGS): $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target .typings \
		micropython-rp2-rpi_pico-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2
	touch $(TYPINGS)

lint: $(STAMP) $(TYPINGS)
	$(VENV)/bin/ruff check host_tools tests bench firmware boards
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy boards/rpi_pico2/board.py

test: $(STAMP) lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) bench/demo.py

bench: $(STAMP)
	$(PY) bench/run.py

# The board says what it is; BOARD= on the command line insists (refused if it does not match).
flash: $(STAMP)
	$(VENV)/bin/pumpctl flash $(if $(filter command line,$(origin BOARD)),--board $(BOARD)) $(if $(PORT),--port $(PORT))

# docs/img/*.png: the web programmer's pages, taken by its browser test against the virtual board
screenshots: $(STAMP)
	ITPUMP_SCREENSHOTS=1 $(PY) -m pytest -q tests/e2e/test_web.py

# A MicroPython v1.28 image for BOARD (rpi_pico, rpi_pico2) with the firmware frozen in:
# build/$(BOARD)/firmware.uf2. FROZEN=0: the stock image (build/$(BOARD)-stock/). MPY_DIR: your checkout.
FROZEN ?= 1
MPY_DIR ?=
firmware: $(STAMP)
	$(PY) -m pumpctl.fwbuild --board $(BOARD) $(if $(filter 0,$(FROZEN)),--stock) $(if $(MPY_DIR),--mpy-dir $(MPY_DIR))

clean:
	rm -rf $(VENV) .typings .vboard build *.egg-info host_tools/*.egg-info
