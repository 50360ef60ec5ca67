# The halt table (firmware/itpump/pump.py HALTS) against the H_* bits, the names on the link and the
# alarms that release them (CPython and micropython).
import pytest

from itpump import alarms, pump

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
    from itpump import ops

    assert ops._halt_names(0) == []
    assert ops._halt_names(pump.H_SAFE | pump.H_EMPTY | pump.H_LEAK) == ["reservoir_empty", "leak", "safe_mode"]
