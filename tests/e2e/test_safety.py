"""Safety on the virtual board: an occlusion injected into the simulated line (boards/sim/rom/plant.py)
stops the motor with an OCCLUSION alarm event within a bounded virtual time; clearing it releases the
stored bolus, logged, and delivery resumes after the clinician's acknowledgement; a dead pressure sensor
stops the pump too."""

import pytest

from pumpctl.client import Client
from pumpctl.link import Link
from vbtools import FILL, RX, advance, keyed_board, raised, until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pump(tmp_path_factory):
    """A flashed virtual board with keys on it (/keys.json), filled and running RX."""
    b = keyed_board(tmp_path_factory)
    yield b
    b.stop()


def test_occlusion_stops_the_motor_with_an_alarm_and_clears_with_a_logged_bolus(pump):
    with Link(pump.port) as link:
        c = Client(link)
        c.wait_ready(10)
        c.request("sim.fault", {"fault": "all", "clear": True})
        c.change("refill", FILL, pump.ks)
        c.change("program", {"rx": RX}, pump.ks)
        advance(c, 120)  # the detector learns the line (256 ticks) before it may alarm
        st = c.request("status")
        assert st["running"] and st["alarms"] == [] and st["line"]["occlusion"]["armed"], st
        c.events.clear()

        c.request("sim.fault", {"fault": "occlusion", "k": None})  # full blockage at the catheter
        t, st = until(c, lambda s: "OCCLUSION" in s["alarms"], 600)
        assert not st["running"] and "occlusion" in st["halt"], st
        assert raised(c, "OCCLUSION"), c.events  # the unsolicited event line
        w = c.request("sim.state")
        assert not w["motor_enabled"] and not w["motor_busy"]
        steps = w["steps_in"]
        print(f"occlusion alarm within {t} virtual s at 0.96 mL/day, line {st['pressure_pa']} Pa")
        advance(c, 60)
        assert c.request("sim.state")["steps_in"] == steps  # stays stopped

        # the blockage goes: the stored volume drains (a bolus), the detector sees it clear
        c.request("sim.fault", {"fault": "occlusion", "clear": True})
        t, st = until(c, lambda s: s["line"]["occlusion"]["state"] != "occlusion", 120)
        assert st["line"]["occlusion"]["released_nl"] > 0 and "occlusion" in st["halt"]  # latched
        c.change("ack", {"code": "OCCLUSION"}, pump.ks)
        advance(c, 10)
        st = c.request("status")
        assert st["running"] and "OCCLUSION" not in st["alarms"], st


def test_fast_forward_does_not_false_alarm_and_still_catches_a_gross_occlusion(pump):
    with Link(pump.port) as link:
        c = Client(link)
        c.wait_ready(10)
        c.request("sim.fault", {"fault": "all", "clear": True})
        c.change("program", {"rx": RX}, pump.ks)  # relearn the line
        advance(c, 60)
        advance(c, 2 * 3600, quantum_ms=5000)  # 2 h of ticks 5 s apart
        st = c.request("status")
        assert st["running"] and st["alarms"] == [] and st["line"]["gap_ticks"] > 1000, st
        c.events.clear()
        c.request("sim.fault", {"fault": "occlusion", "k": None})
        # 10 kPa over the baseline at ~18 Pa/s (0.74 steps/s of 25 Pa): ~9 virtual minutes
        t, st = until(c, lambda s: "OCCLUSION" in s["alarms"], 1800, quantum_ms=5000)
        assert not st["running"] and raised(c, "OCCLUSION") and not c.request("sim.state")["motor_enabled"]
        print(f"gross occlusion alarm within {t} virtual s between 5 s ticks")
        c.request("sim.fault", {"fault": "occlusion", "clear": True})
        advance(c, 120)
        c.change("ack", {"code": "all"}, pump.ks)
        advance(c, 10)
        assert c.request("status")["running"]


def test_a_dead_pressure_sensor_stops_the_pump(pump):
    with Link(pump.port) as link:
        c = Client(link)
        c.wait_ready(10)
        st = c.request("status")
        assert st["running"], st
        c.events.clear()
        c.request("sim.fault", {"fault": "sensor", "mode": "open"})
        t, st = until(c, lambda s: "SENSOR_FAULT" in s["alarms"], 30)
        assert not st["running"] and "pressure_sensor" in st["halt"] and raised(c, "SENSOR_FAULT")
        assert not c.request("sim.state")["motor_enabled"]
        c.request("sim.fault", {"fault": "sensor", "clear": True})
        c.change("ack", {"code": "SENSOR_FAULT"}, pump.ks)
        advance(c, 10)
        assert c.request("status")["running"]
