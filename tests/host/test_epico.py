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


def test_the_served_boards_launch_and_stop_alike(tmp_path):
    """vboard.State.launch/stop serve both: a process that ignores SIGTERM is killed after the timeout,
    with its group, and the run files go (the emulated Pico's control socket too)."""
    import time

    from pumpctl import PumpctlError

    (tmp_path / "fakeserve.py").write_text(
        "import os, pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "d = pathlib.Path(sys.argv[2])\n"
        "(d / 'port').write_text('/dev/fake0')\n"
        "(d / 'pid').write_text(str(os.getpid()))\n"
        "time.sleep(60)\n")

    class Fake(epico.State):
        serve_module = "fakeserve"

    st = Fake(tmp_path / "state")
    st.dir.mkdir()
    assert st.launch(10.0, env={**os.environ, "PYTHONPATH": str(tmp_path)}) == "/dev/fake0"
    st.sock_file.write_text("")
    s = st.status("heap")
    assert s["running"] and s["port"] == "/dev/fake0" and "heap" in s and s["flash_bytes"] == 0
    with pytest.raises(PumpctlError, match="emulated Pico already running in .* on /dev/fake0"):
        st.check_free(1.0)
    pid = st.pid()
    assert st.stop(0.2) is True
    assert not any(f.exists() for f in st.run_files())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the process survived stop()")
    assert st.stop(0.2) is False
