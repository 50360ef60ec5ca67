"""The virtual board's own hardware: watchdog, reset button, virtual clock control."""

import math
import time

import pytest

from pumpctl.client import Client
from pumpctl.link import Link

pytestmark = pytest.mark.e2e


def _wait_ff(c, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while c.request("sim.clock")["fast_forward"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


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

        # fast-forward one virtual hour: idle time is skipped; at quantum 100 the loop ticks every 100 ms
        ticks0 = c.request("status")["ticks"]
        assert c.request("sim.advance", {"s": 3600, "quantum_ms": 100})["quantum_ms"] == 100
        _wait_ff(c)
        st = c.request("status")
        assert st["uptime_ms"] >= 3600_000 and 35_000 <= st["ticks"] - ticks0 <= 36_100
        # the default quantum: idle waits jump further, the ticks are that much further apart
        ticks0, up0 = st["ticks"], st["uptime_ms"]
        q = c.request("sim.advance", {"s": 3600})["quantum_ms"]
        _wait_ff(c)
        st = c.request("status")
        # (a reset on the way would have restarted the uptime and ended the fast-forward)
        assert st["uptime_ms"] - up0 >= 3600_000 and st["ticks"] - ticks0 <= 3600_000 // q + 10
        assert c.request("sim.clock")["quantum_ms"] == q

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


# morphine 10 mg/mL at 0.96 mL/day (40000 nL/h): near the basal maximum, so 2 h is ~5300 steps of 15 nL
RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}


def _programmed(board, tmp_path):
    """Flash, install fresh keys, refill, program: a pump delivering RX."""
    from pumpctl import keys
    from pumpctl.mpr import Device
    from vbtools import run

    run("pumpctl", "flash", "--board", "sim", "--port", board.port, "--quiet", check=True)
    with Link(board.port) as link:
        dev_id = Client(link).wait_ready(20)["device_id"]
    ks = keys.provision(dev_id, root=tmp_path / "keys")
    with Device(board.port) as dev:
        dev.write_file("/keys.json", ks.device_file())
        dev.soft_reset()
    return ks


def _owed_nl(st):
    return st["line"]["rotor"]["owed_pl"] / 1000


def _delivered_over(c, seconds, quantum_ms):
    """nL the firmware counted over `seconds`, plus what its first index edge's re-pricing of the blind
    steps still owes the programme (booked at the edge, settled slowly: dosing.SETTLE_DIV), so the sum
    follows the prescription whenever that edge falls."""
    st0 = c.request("status")
    c.request("sim.advance", {"s": seconds, "quantum_ms": quantum_ms})
    _wait_ff(c)
    st = c.request("status")
    got = st["delivered_nl"] - st0["delivered_nl"] + _owed_nl(st) - _owed_nl(st0)
    print(f"over {seconds} s at {quantum_ms} ms: counted {st['delivered_nl'] - st0['delivered_nl']} nL, "
          f"owed {_owed_nl(st0):+.1f} -> {_owed_nl(st):+.1f} nL")
    return got, st["ticks"] - st0["ticks"], st


def test_coarse_fast_forward_delivers_what_the_fine_tick_delivers(fresh_board, tmp_path):
    ks = _programmed(fresh_board, tmp_path)
    with Link(fresh_board.port) as link:
        c = Client(link, timeout_s=20)
        assert c.wait_ready(20)["keys"] == "ok"
        c.change("refill", FILL, ks)
        c.change("program", {"rx": RX}, ks)
        _delivered_over(c, 60, 100)  # past the first moves
        fine, fine_ticks, _ = _delivered_over(c, 7200, 100)
        q = 500
        coarse, coarse_ticks, st = _delivered_over(c, 7200, q)
        expected = 40000 * 2
        assert fine_ticks >= 71_000 and coarse_ticks <= 7200 * 1000 // q + 10  # the quanta did apply
        assert abs(fine - expected) <= expected // 1000, fine  # each within 0.1 % of the prescription
        assert abs(coarse - expected) <= expected // 1000, coarse
        assert abs(coarse - fine) <= expected // 1000
        assert st["reset_cause"] != "WDT" and st["alarms"] == [] and st["dosing"]["skipped_ms"] == 0
        w = c.request("sim.state")
        # the plant got what was counted: the firmware prices each step at its phase of the roller pass
        # (the sim unit's pulsation profile, +-24 % at most), so steps x mean differs from its count by at
        # most the profile's excess over a partial pass (spp * A / pi = 1067 * 0.24 / pi steps), plus 2
        assert abs(w["steps_in"] * 15 - st["delivered_nl"]) <= 15 * (2 + 1067 * 0.24 / math.pi)
