# itpump.check_int is the firmware's one checked integer and itpump.LimitError its one refusal: the guard,
# the battery monitor, the supervisor, the reservoir, the prescription, the step volume and the roller pass
# refuse through them (CPython and micropython).
import pytest

import itpump
from fakes import raises
from itpump import dosing, guard, ops, power, prescription, pulsation, reservoir, supervisor, therapy

pytestmark = pytest.mark.micropython


def test_one_helper_serves_every_module():
    for m in (guard, power, supervisor, reservoir, prescription, dosing, pulsation):
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


def test_a_prescription_field_says_whose_bound_it_is():
    rx = {"drug": "morphine", "conc_ug_per_ml": 25000}
    e = raises(itpump.LimitError, prescription.field_int, rx, "conc_ug_per_ml", 1, 20000, "", " for morphine")
    assert str(e) == "conc_ug_per_ml = 25000: above the maximum for morphine 20000", str(e)
    e = raises(itpump.LimitError, prescription.field_int, rx, "lockout_min", 0, 60, "patient_bolus.")
    assert str(e) == "patient_bolus.lockout_min = None: missing, must be 'an integer'", str(e)


def test_the_step_volume_and_the_roller_pass_refuse_through_it():
    e = raises(itpump.LimitError, dosing.check_pl_per_step, dosing.PL_PER_STEP_MIN - 1)
    assert str(e) == "pl_per_step = %d: below the minimum %d" % (dosing.PL_PER_STEP_MIN - 1, dosing.PL_PER_STEP_MIN)
    e = raises(itpump.LimitError, pulsation.check_profile, [0] * 32, 1.5)
    assert str(e) == "steps_per_pass_milli = 1.5: must be 'an integer'", str(e)
