"""The virtual board's own hardware: watchdog, reset button, virtual clock control."""

import time

import pytest

from pumpctl.client import Client
from pumpctl.link import Link

pytestmark = pytest.mark.e2e


def test_hung_loop_is_reset_by_the_watchdog(flashed_board):
    with Link(flashed_board.port) as link:
        c = Client(link)
        c.wait_ready(10)
        link.write(b'{"id":900,"op":"sim.hang"}\n')  # never answered: the loop spins
        ev = c.wait_event("boot", timeout_s=15)
        assert ev["reset_cause"] == "WDT"
        assert c.request("status")["reset_cause"] == "WDT"


def test_reset_button_and_clock_control(flashed_board):
    with Link(flashed_board.port) as link:
        c = Client(link)
        c.wait_ready(10)
        clk = c.request("sim.clock")
        assert clk["speed"] == 1.0 and clk["fast_forward"] is False
        c.request("sim.clock", {"speed": 50})
        t0 = time.monotonic()
        up0 = c.request("status")["uptime_ms"]
        time.sleep(0.5)
        up1 = c.request("status")["uptime_ms"]
        assert 15 < (up1 - up0) / ((time.monotonic() - t0) * 1000) < 80
        c.request("sim.clock", {"speed": 1})

        # fast-forward one virtual hour: idle time is skipped, the loop still ticks every 100 ms
        ticks0 = c.request("status")["ticks"]
        c.request("sim.advance", {"s": 3600})
        deadline = time.monotonic() + 60
        while c.request("sim.clock")["fast_forward"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        st = c.request("status")
        assert st["uptime_ms"] >= 3600_000 and st["ticks"] - ticks0 >= 35_000

        err = None
        try:
            c.request("sim.clock", {"speed": -1})
        except Exception as e:  # DeviceError
            err = e
        assert err is not None and err.code == "ARGS"

        link.write(b'{"id":901,"op":"sim.reset"}\n')
        assert c.wait_event("boot", timeout_s=10)["reset_cause"] == "HARD"


def test_world_state_faults_and_persistence_across_a_reset(flashed_board):
    with Link(flashed_board.port) as link:
        c = Client(link)
        c.wait_ready(10)
        c.request("sim.fault", {"fault": "all", "clear": True})
        w = c.request("sim.state")
        assert w["faults"] == [] and 19_000 < w["reservoir_ul"] <= 20_000 and w["battery_mv"] > 3000
        assert w["motor_enabled"] is False and w["buzzer_hz"] == 0
        assert c.request("sim.fault", {"fault": "occlusion", "k": None})["faults"] == ["occlusion"]
        err = None
        try:
            c.request("sim.fault", {"fault": "meteor"})
        except Exception as e:
            err = e
        assert err is not None and err.code == "ARGS" and "unknown fault" in err.message
        assert c.request("sim.button", {"long": True})["queued"] == 1
        link.write(b'{"id":902,"op":"sim.reset"}\n')
        c.wait_event("boot", timeout_s=10)
        # the MCU reset; the world did not: the occlusion is still there
        assert c.request("sim.state")["faults"] == ["occlusion"]
        c.request("sim.fault", {"fault": "all", "clear": True})
        assert c.request("sim.state")["faults"] == []


def test_repl_session_is_not_cut_by_the_watchdog(flashed_board):
    from pumpctl.mpr import Device

    with Link(flashed_board.port) as link:
        Client(link).wait_ready(10)  # firmware running, watchdog armed
    with Device(flashed_board.port) as dev:  # Ctrl-C: the firmware leaves for the REPL
        time.sleep(2.5)  # > the bridge's 1 s real-time watchdog budget
        assert dev.eval("6*7") == 42
    import subprocess
    import sys
    from pathlib import Path

    subprocess.run([str(Path(sys.executable).parent / "pumpctl"), "restart", "--port", flashed_board.port],
                   check=True, capture_output=True)
