# Battery monitor (firmware/itpump/power.py) under CPython and micropython.
import pytest

from fakes import raises
from itpump import alarms, power
from itpump.power import EOS, ERI, LOW, OK, BatteryMonitor

pytestmark = pytest.mark.micropython


def feed(m, mv, n=8):
    for _ in range(n):
        st = m.update(mv)
    return st


def test_default_thresholds_are_for_three_alkaline_cells():
    m = BatteryMonitor()
    assert (m.low_mv, m.eri_mv, m.eos_mv, m.replaced_mv) == (3600, 3300, 3000, 4200)


def test_first_sample_primes_the_average():
    m = BatteryMonitor()
    assert m.update(4700) == OK and m.avg_mv == 4700
    m = BatteryMonitor()
    assert m.update(2900) == EOS  # a flat pack at boot is EOS at once


def test_discharge_walks_down_the_states():
    m = BatteryMonitor()
    feed(m, 4500)
    seen = []
    for mv in range(4500, 2800, -10):
        st = m.update(mv)
        if not seen or seen[-1] != st:
            seen.append(st)
    assert seen == [OK, LOW, ERI, EOS]
    assert m.alarm() == alarms.BATTERY_EOS and m.status()["state"] == "EOS"


def test_averaging_rides_out_motor_dips():
    m = BatteryMonitor()
    feed(m, 3700)
    for _ in range(20):  # a 400 mV sag on one sample in eight (motor pulse)
        m.update(3300)
        feed(m, 3700, 7)
    assert m.state == OK


def test_low_has_hysteresis():
    m = BatteryMonitor()
    feed(m, 3590)
    assert m.state == LOW
    feed(m, 3620)  # above LOW but inside the 75 mV band
    assert m.state == LOW
    feed(m, 3675)
    assert m.state == OK and m.alarm() == -1


def test_eri_and_eos_latch_until_a_fresh_pack():
    m = BatteryMonitor()
    feed(m, 3250)
    assert m.state == ERI
    feed(m, 3900)  # alkaline recovery at rest
    assert m.state == ERI
    feed(m, 2950)
    assert m.state == EOS
    feed(m, 4000)
    assert m.state == EOS
    feed(m, 4800)  # replaced
    assert m.state == OK


def test_implausible_readings_are_a_fault_and_change_nothing():
    m = BatteryMonitor()
    feed(m, 4500)
    for bad in (0, -5, 12000):
        assert m.update(bad) == OK and m.fault
        assert m.avg_mv == 4500
    m.update(4500)
    assert not m.fault


def test_the_shown_state_follows_the_reading():
    m = BatteryMonitor()
    assert m.status()["state"] == "UNKNOWN"  # no reading yet
    for bad in (0, 1799, 10001):
        m.update(bad)
        st = m.status()
        assert st["state"] == "UNKNOWN" and st["fault"] and st["reading_mv"] == bad, st
    feed(m, 4500)
    assert m.status()["state"] == "OK" and m.status()["reading_mv"] == 4500
    feed(m, 3200)  # 3 alkaline cells: ERI below 3300 mV
    assert m.status()["state"] == "ERI"
    m.update(0)
    assert m.status()["state"] == "UNKNOWN" and m.state == ERI  # the alarm stays as judged
    m.update(3200)
    assert m.status()["state"] == "ERI"


def test_configuration_is_validated():
    e = raises(ValueError, BatteryMonitor, 3, 1100, 1200)
    assert "thresholds must rise" in str(e)
    raises(ValueError, BatteryMonitor, 0)
    raises(ValueError, BatteryMonitor, 3, 1200, 1100, 1000, 25, 1400, 0)
    e = raises(ValueError, BatteryMonitor, 1)  # one alkaline cell: its EOS could never be read
    assert "plausible floor" in str(e)
    m = BatteryMonitor(cells=1, low_mv_per_cell=3500, eri_mv_per_cell=3400, eos_mv_per_cell=3200,
                       replaced_mv_per_cell=3600, hyst_mv_per_cell=20)  # a Li-SOCl2-like setting
    assert m.update(3300) == ERI
    assert power.STATE_NAMES[m.state] == "ERI"
