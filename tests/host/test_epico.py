"""The emulated Pico's analog front end (pumpctl.epico) read back through the firmware's own drivers, and
its prerequisites check."""

import os

import pytest

from pumpctl import epico


class CodeAdc:
    """machine.ADC stand-in: one fixed 12-bit code, as read_u16() scales it."""

    def __init__(self, code):
        self.code = code

    def read_u16(self):
        return self.code << 4


def test_battery_code_reads_back_through_the_board_driver():
    from itpump.hal.adc import OversampledAdc
    from itpump.hal.battery import Battery

    for mv in (3000, 3700, 3900, 4200):
        got = Battery(OversampledAdc(CodeAdc(epico.battery_code(mv))), 2, 1).read_mv()
        assert abs(got - mv) <= 2, (mv, got)  # one code is 1.6 mV of battery


@pytest.mark.parametrize("pa", [0, 981, 10_000, 50_000, 150_000])
def test_pressure_code_reads_back_within_one_code(pa):
    from itpump.hal.adc import OversampledAdc
    from itpump.hal.pressure import PressureSensor

    got = PressureSensor(OversampledAdc(CodeAdc(epico.pressure_code(pa))), 3, 2, 500, 50_000, 0).read_pa()
    assert abs(got - pa) <= 125, (pa, got)  # 60 Pa per code, plus the driver's integer rounding


def test_codes_are_clamped_to_12_bits():
    assert epico.pressure_code(-1e6) == 0 and epico.pressure_code(1e7) == 4095
    assert epico.battery_code(10_000) == 4095


def test_missing_prereqs_names_node_and_the_bootrom(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ITPUMP_BOOTROM", str(tmp_path / "nope.bin"))
    missing = " ".join(epico.missing_prereqs())
    assert "node" in missing and "bootrom" in missing
    (tmp_path / "nope.bin").write_bytes(b"\0" * 16384)
    assert "bootrom" not in " ".join(epico.missing_prereqs())
    assert epico.find_bootrom() == tmp_path / "nope.bin" and os.environ["ITPUMP_BOOTROM"]
