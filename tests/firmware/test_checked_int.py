# guard.check_int is the firmware's one checked integer: the guard, the battery monitor and the
# supervisor validate their settings with it (CPython and micropython).
import pytest

from fakes import raises
from itpump import guard, power, supervisor

pytestmark = pytest.mark.micropython


def test_one_helper_serves_every_module():
    assert power.check_int is guard.check_int and supervisor.check_int is guard.check_int


def test_an_integer_in_range_passes_and_anything_else_is_named():
    assert guard.check_int("n", 0, 0, 5) == 0 and guard.check_int("n", 5, 0, 5) == 5
    for bad in (-1, 6, True, 1.0, "3", None):
        e = raises(ValueError, guard.check_int, "n_avg", bad, 0, 5)
        assert str(e).startswith("n_avg must be an integer in 0..5, got "), str(e)


def test_the_battery_monitor_refuses_through_it():
    e = raises(ValueError, power.BatteryMonitor, cells=7)
    assert str(e) == "cells must be an integer in 1..6, got 7", str(e)
