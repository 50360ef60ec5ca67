# The halt table (firmware/itpump/halts.py HALTS) against the H_* bits, the names on the link and the
# alarms that release them, and the names derived from it and from alarms.TABLE's event column; the
# acknowledge and release rules (halts.py) (CPython and micropython).
import pytest

from fakes import FakePumpBoard
from itpump import alarms, halts, pump

pytestmark = pytest.mark.micropython

# bit, name on the link (status "halt", the bolus refusal), releasing alarm (-1: none)
WANT = (
    (halts.H_EMPTY, "reservoir_empty", alarms.RESERVOIR_EMPTY),
    (halts.H_GUARD, "dose_guard", alarms.DOSE_GUARD),
    (halts.H_MISMATCH, "step_mismatch", alarms.STEP_MISMATCH),
    (halts.H_STALL, "stall", alarms.STALL),
    (halts.H_INTERNAL, "internal", alarms.INTERNAL),
    (halts.H_OCCLUSION, "occlusion", alarms.OCCLUSION),
    (halts.H_LEAK, "leak", alarms.LEAK),
    (halts.H_SENSOR, "pressure_sensor", alarms.SENSOR_FAULT),
    (halts.H_BATTERY, "battery_eos", alarms.BATTERY_EOS),
    (halts.H_SAFE, "safe_mode", -1),
)
# Raised by an event (no sensor says when it is over: the acknowledgement ends it), not by a condition
EVENT_ALARMS = (alarms.STALL, alarms.DOSE_GUARD, alarms.STEP_MISMATCH, alarms.INTERNAL, alarms.WATCHDOG_RESET)


def test_each_halt_bit_has_its_row():
    assert len(halts.HALTS) == 2 * len(WANT)
    for bit, name, code in WANT:
        i = 0
        while (1 << i) != bit:
            i += 1
            assert i < 16, bit  # a single bit
        assert halts.HALTS[2 * i] == name and halts.HALTS[2 * i + 1] == code, (bit, name)


def test_by_alarm_is_derived_from_the_table():
    want = {}
    for bit, _name, code in WANT:
        if code >= 0:
            want[code] = bit
    assert halts.H_BY_ALARM == want
    assert halts.H_CONDITION == halts.H_OCCLUSION | halts.H_LEAK | halts.H_SENSOR | halts.H_BATTERY
    assert halts.RELEARN_AFTER == halts.H_STALL | halts.H_LEAK | halts.H_SENSOR
    assert halts.SAVED == ~halts.H_SAFE


def test_event_alarms_are_the_tables_column_and_condition_halts_their_complement():
    assert tuple(c for c in range(alarms.N_CODES) if alarms.event(c)) == tuple(sorted(EVENT_ALARMS))
    for c in range(alarms.N_CODES):
        assert alarms.event(c) is alarms.TABLE[c][3] and (not alarms.event(c) or alarms.latching(c)), c
    # a halt with an alarm is a condition's (released when the alarm ends) exactly when its alarm is not
    # an event's, but for an empty reservoir, which only a refill releases
    for bit, _name, code in WANT:
        if code >= 0 and bit != halts.H_EMPTY:
            assert bool(bit & halts.H_CONDITION) == (not alarms.event(code)), bit
    assert not halts.H_CONDITION & (halts.H_EMPTY | halts.H_SAFE)


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
    halts.release_inactive(p)
    # occlusion, sensor and battery ended; the leak alarm is still active; the others need their own action
    assert p.halt == every & ~(halts.H_OCCLUSION | halts.H_SENSOR | halts.H_BATTERY), p.halt


def test_status_names_the_halt_bits_lowest_first():
    assert halts.names(0) == []
    assert halts.names(halts.H_SAFE | halts.H_EMPTY | halts.H_LEAK) == ["reservoir_empty", "leak", "safe_mode"]


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
    p.stop(halts.H_GUARD, alarms.DOSE_GUARD)
    assert p.halt == halts.H_GUARD and p.alarms.is_active(alarms.DOSE_GUARD)
    assert halts.ack(p, _Sup(), alarms.DOSE_GUARD) == ["DOSE_GUARD"]
    assert p.halt == 0 and not p.alarms.is_active(alarms.DOSE_GUARD)


def test_a_condition_halt_waits_for_its_condition_and_empty_waits_for_a_refill():
    p = _pump()
    p.stop(halts.H_OCCLUSION, alarms.OCCLUSION)
    p.stop(halts.H_EMPTY, alarms.RESERVOIR_EMPTY)
    assert sorted(halts.ack(p, _Sup(), None)) == ["OCCLUSION", "RESERVOIR_EMPTY"]
    assert p.halt == halts.H_OCCLUSION | halts.H_EMPTY  # still blocked; the reservoir still empty
    p.condition_gone(alarms.OCCLUSION)
    assert p.halt == halts.H_EMPTY


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
    halts.restore(p, halts.H_LEAK | halts.H_EMPTY | halts.H_SAFE)
    assert p.halt == halts.H_LEAK and p.alarms.is_active(alarms.LEAK) and not p.alarms.is_present(alarms.LEAK)
    assert (halts.H_LEAK | halts.H_SAFE) & halts.SAVED == halts.H_LEAK
