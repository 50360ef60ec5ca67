"""The chip stage: the firmware on the official rp2 MicroPython on an emulated Pico (pumpctl.epico);
without node, the bootrom or the images it is skipped with one line naming what is missing
(docs/epico.md: the chip tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pumpctl import epico

HERE = Path(__file__).resolve().parent
_stage = {"missing": None, "wall_s": 0.0, "tests": 0}


def _missing() -> list[str]:
    missing = epico.missing_prereqs()
    if os.environ.get("ITPUMP_CHIP_STOCK") and os.environ.get("ITPUMP_CHIP_FROZEN"):
        return missing  # prebuilt images given (e.g. a user's own build)
    from pumpctl import fwbuild

    return missing + list(fwbuild.missing_prereqs())


def _is_chip(item) -> bool:
    return HERE in Path(str(item.fspath)).resolve().parents


def pytest_collection_modifyitems(config, items):
    chip = [i for i in items if _is_chip(i)]
    if not chip:
        return
    missing = _missing()
    if missing:
        _stage["missing"] = ", ".join(missing)
        mark = pytest.mark.skip(reason="chip stage: missing " + _stage["missing"])
        for i in chip:
            i.add_marker(mark)


def pytest_runtest_logreport(report):
    if HERE in Path(report.fspath).resolve().parents:
        _stage["wall_s"] += report.duration
        if report.when == "call":
            _stage["tests"] += 1


def pytest_terminal_summary(terminalreporter):
    if _stage["missing"]:
        terminalreporter.write_line(f"chip stage skipped: missing {_stage['missing']}")
    elif _stage["tests"]:
        terminalreporter.write_line(f"chip stage: {_stage['tests']} tests in {_stage['wall_s']:.0f} s wall "
                                    "(emulated Pico, rp2040js)")


def _image(frozen: bool) -> Path:
    env = os.environ.get("ITPUMP_CHIP_FROZEN" if frozen else "ITPUMP_CHIP_STOCK")
    if env:
        return Path(env)
    from pumpctl import fwbuild

    out = Path(fwbuild.build("rpi_pico", frozen=frozen))
    return out / "firmware.uf2"


@pytest.fixture(scope="session")
def stock_image() -> Path:
    return _image(False)


@pytest.fixture(scope="session")
def frozen_image() -> Path:
    return _image(True)


class Chip:
    """A running emulated Pico: its port, state directory and the controller's commands."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port: str | None = None

    def start(self, firmware=None, erase=False):
        self.port = epico.start(self.dir, firmware=firmware, erase=erase)
        return self.port

    def stop(self):
        epico.stop(self.dir)

    def cmd(self, op: str, **kw) -> dict:
        return epico.command(self.dir, {"op": op, **kw})

    def counts(self) -> dict:
        return self.cmd("counts")

    def wait_chip_ms(self, ms: float, timeout_s: float = 600.0) -> None:
        """Wait until the chip's clock has run `ms` further (the test's clock, not the host's)."""
        end = self.counts()["chip_ms"] + ms
        deadline = time.monotonic() + timeout_s
        while self.counts()["chip_ms"] < end:
            assert time.monotonic() < deadline, f"the chip's clock did not reach {end} ms"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def chip_factory(tmp_path_factory):
    started = []

    def make(name: str) -> Chip:
        c = Chip(tmp_path_factory.mktemp(name))
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()
