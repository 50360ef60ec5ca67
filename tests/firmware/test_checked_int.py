# itpump.check_int is the firmware's one checked integer and itpump.LimitError its one refusal: the guard,
# the battery monitor, the supervisor, the reservoir and the therapy refuse through them (CPython and
# micropython).
import pytest

import itpump
from fakes import raises
from itpump import guard, ops, power, reservoir, supervisor, therapy

pytestmark = pytest.mark.micropython


def test_one_helper_serves_every_module():
    for m in (guard, power, supervisor, reservoir):
        assert m.check_int is itpump.check_int, m
    assert therapy.LimitError is itpump.LimitError and ops.LimitError is itpump.LimitError


def test_an_integer_in_range_passes_and_anything_else_is_named():
    assert itpump.check_int("n", 0, 0, 5) == 0 and itpump.check_int("n", 5, 0, 5) == 5
    for bad, why in ((-1, "below the minimum 0"), (6, "above the maximum 5"), (True, "must be 'an integer'"),
                     (1.0, "must be 'an integer'"), ("3", "must be 'an integer'"), (None, "must be 'an integer'")):
        e = raises(itpump.LimitError, itpump.check_int, "n_avg", bad, 0, 5)
        assert e.field == "n_avg" and str(e) == "n_avg = %r: %s" % (bad, why), str(e)


def test_the_battery_monitor_refuses_through_it():
    e = raises(ValueError, power.BatteryMonitor, cells=7)
    assert str(e) == "cells = 7: above the maximum 6", str(e)
