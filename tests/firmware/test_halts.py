# The halt table (firmware/itpump/pump.py HALTS) against the H_* bits, the names on the link and the
# alarms that release them; the acknowledge and release rules (halts.py) (CPython and micropython).
import pytest

from fakes import FakePumpBoard
from itpump import alarms, halts, pump

pytestmark = pytest.mark.micropython

# bit, name on the link (status "halt", the bolus refusal), releasing alarm (-1: none)
WANT = (
    (pump.H_EMPTY, "reservoir_empty", alarms.RESERVOIR_EMPTY),
    (pump.H_GUARD, "dose_guard", alarms.DOSE_GUARD),
    (pump.H_MISMATCH, "step_mismatch", alarms.STEP_MISMATCH),
    (pump.H_STALL, "stall", alarms.STALL),
    (pump.H_INTERNAL, "internal", alarms.INTERNAL),
    (pump.H_OCCLUSION, "occlusion", alarms.OCCLUSION),
    (pump.H_LEAK, "leak", alarms.LEAK),
    (pump.H_SENSOR, "pressure_sensor", alarms.SENSOR_FAULT),
    (pump.H_BATTERY, "battery_eos", alarms.BATTERY_EOS),
    (pump.H_SAFE, "safe_mode", -1),
)


def test_each_halt_bit_has_its_row():
    assert len(pump.HALTS) == 2 * len(WANT)
    for bit, name, code in WANT:
        i = 0
        while (1 << i) != bit:
            i += 1
            assert i < 16, bit  # a single bit
        assert pump.HALTS[2 * i] == name and pump.HALTS[2 * i + 1] == code, (bit, name)


def test_by_alarm_is_derived_from_the_table():
    want = {}
    for bit, _name, code in WANT:
        if code >= 0:
            want[code] = bit
    assert pump.H_BY_ALARM == want
    assert pump.H_CONDITION == pump.H_OCCLUSION | pump.H_LEAK | pump.H_SENSOR | pump.H_BATTERY


class _Alarms:
    def __init__(self, active):
        self._active = active

    def is_active(self, code):
        return code in self._active


class _Halted:
    def __init__(self, halt, active):
        self.halt = halt
        self.alarms = _Alarms(active)


def test_release_inactive_frees_only_condition_halts_whose_alarm_ended():
    every = 0
    for bit, _name, _code in WANT:
        every |= bit
    p = _Halted(every, (alarms.LEAK,))
    pump.Pump.release_inactive(p)
    # occlusion, sensor and battery ended; the leak alarm is still active; the others need their own action
    assert p.halt == every & ~(pump.H_OCCLUSION | pump.H_SENSOR | pump.H_BATTERY), p.halt


def test_status_names_the_halt_bits_lowest_first():
    assert halts.names(0) == []
    assert halts.names(pump.H_SAFE | pump.H_EMPTY | pump.H_LEAK) == ["reservoir_empty", "leak", "safe_mode"]


class _Sup:
    def __init__(self):
        self.safe_cleared = 0

    def clear_safe_mode(self):
        self.safe_cleared += 1


def _pump():
    b = FakePumpBoard()
    return pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None, b.calibration)


def test_acknowledging_an_event_alarm_releases_its_halt_and_ends_it():
    p = _pump()
    p.stop(pump.H_GUARD, alarms.DOSE_GUARD)
    assert p.halt == pump.H_GUARD and p.alarms.is_active(alarms.DOSE_GUARD)
    assert halts.ack(p, _Sup(), alarms.DOSE_GUARD) == ["DOSE_GUARD"]
    assert p.halt == 0 and not p.alarms.is_active(alarms.DOSE_GUARD)


def test_a_condition_halt_waits_for_its_condition_and_empty_waits_for_a_refill():
    p = _pump()
    p.stop(pump.H_OCCLUSION, alarms.OCCLUSION)
    p.stop(pump.H_EMPTY, alarms.RESERVOIR_EMPTY)
    assert sorted(halts.ack(p, _Sup(), None)) == ["OCCLUSION", "RESERVOIR_EMPTY"]
    assert p.halt == pump.H_OCCLUSION | pump.H_EMPTY  # still blocked; the reservoir still empty
    p.condition_gone(alarms.OCCLUSION)
    assert p.halt == pump.H_EMPTY


def test_acknowledging_internal_ends_safe_mode_and_an_inactive_alarm_changes_nothing():
    p = _pump()
    sup = _Sup()
    assert halts.ack(p, sup, alarms.INTERNAL) is None
    halts.after_reset(p, {"alarms": [alarms.WATCHDOG_RESET], "safe_mode": True, "wdt_resets": 3})
    halts.hold_internal(p)
    assert halts.ack(p, sup, alarms.INTERNAL) == ["INTERNAL"]
    assert p.halt == 0 and sup.safe_cleared == 1


def test_saved_halts_come_back_latched_but_empty_and_safe_mode_do_not():
    p = _pump()
    halts.restore(p, pump.H_LEAK | pump.H_EMPTY | pump.H_SAFE)
    assert p.halt == pump.H_LEAK and p.alarms.is_active(alarms.LEAK) and not p.alarms.is_present(alarms.LEAK)
    assert (pump.H_LEAK | pump.H_SAFE) & halts.SAVED == pump.H_LEAK
