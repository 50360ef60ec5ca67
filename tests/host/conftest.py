"""Fixtures of the host tests: no virtual board in the way, and the serial ports discovery would list."""

import pytest

from pumpctl import vboard


class FakePort:
    """What serial.tools.list_ports.comports() yields, reduced to what pumpctl reads."""

    def __init__(self, device, vid, pid=0x0005, serial=None, product=None):
        self.device, self.vid, self.pid, self.serial_number, self.product = device, vid, pid, serial, product


@pytest.fixture
def no_vboard(monkeypatch, tmp_path):
    monkeypatch.setattr(vboard, "DEFAULT_DIR", tmp_path / "none")
    monkeypatch.delenv("ITPUMP_PORT", raising=False)


@pytest.fixture
def comports(monkeypatch):
    """comports((device, vid[, pid, serial, product]), ...) sets what port discovery sees."""
    import serial.tools.list_ports

    def set_ports(*ports):
        monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [FakePort(*p) for p in ports])

    return set_ports
