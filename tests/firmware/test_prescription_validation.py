# The prescription's validation (itpump/prescription.py, which pumpctl.prescription shares): the drug
# table, every limit with the field, value and bound it names, and the figures derived at programming time.
# What the therapy does with a valid prescription: test_therapy.py.
import pytest

from fakes import raises
from itpump import LimitError, drugs, prescription
from rx_samples import patient, rx_cont, rx_flex, rx_periodic

pytestmark = pytest.mark.micropython


def refused(rx, field):
    e = raises(LimitError, prescription.Prescription, rx)
    assert isinstance(e, ValueError)
    assert e.field == field, (e.field, str(e))
    assert field in str(e)
    return e


# -- drug table ------------------------------------------------------------------------------------
def test_drug_table_is_integers_with_sane_ranges():
    assert drugs.names() == ["baclofen", "bupivacaine", "clonidine", "hydromorphone", "morphine", "ziconotide"]
    for name in drugs.names():
        cmin, cmax, dmin, dmax = drugs.limits(name)
        for v in (cmin, cmax, dmin, dmax):
            assert type(v) is int and v > 0
        assert cmin < cmax and dmin < dmax
        # every maximum daily dose fits the device daily volume at the maximum concentration
        assert prescription.volume_nl(dmax, cmax) <= drugs.MAX_DAILY_NL, name
    assert drugs.limits("morphine")[3] == 15000000  # PACC 2017: 15 mg/day
    assert drugs.limits("ziconotide")[3] == 19200  # 19.2 ug/day


def test_device_volume_limits_are_consistent():
    assert drugs.MAX_BASAL_NL_PER_H * 24 == drugs.MAX_BASAL_NL_PER_DAY <= drugs.MAX_DAILY_NL
    assert drugs.MIN_BASAL_NL_PER_H * 24 == drugs.MIN_BASAL_NL_PER_DAY
    # a bolus always has room over the largest basal; rates stay in dosing's int range
    assert drugs.MAX_BASAL_NL_PER_H < drugs.MAX_RATE_NL_PER_H <= 1000000


# -- integer conversions ---------------------------------------------------------------------------
def test_rate_rounds_to_nearest_nl_per_h():
    assert prescription.rate_nl_per_h(1000000, 10000) == 4167  # 4166.67
    assert prescription.rate_nl_per_h(500000, 6000) == 3472  # 3472.2
    assert prescription.volume_nl(1, 2000) == 1  # 0.5 nL rounds up
    assert prescription.volume_nl(1, 2001) == 0


# -- the prescription as a whole -------------------------------------------------------------------
def test_validate_returns_independent_copy():
    rx = rx_cont(patient_bolus=patient())
    out = prescription.validate(rx)
    assert out == rx
    rx["patient_bolus"]["dose_ng"] = 1
    assert out["patient_bolus"]["dose_ng"] == 100000


def test_limit_error_names_field_value_limit():
    e = refused(rx_cont(conc_ug_per_ml=30000), "conc_ug_per_ml")
    assert e.value == 30000 and e.limit == 20000
    e = refused(rx_cont(dose_ng_per_day=16000000), "dose_ng_per_day")
    assert e.value == 16000000 and e.limit == 15000000


def test_every_top_level_limit():
    refused(rx_cont(drug="heroin"), "drug")
    refused(rx_cont(conc_ug_per_ml=999), "conc_ug_per_ml")
    refused(rx_cont(conc_ug_per_ml=1.5), "conc_ug_per_ml")
    refused(rx_cont(conc_ug_per_ml=True), "conc_ug_per_ml")
    refused(rx_cont(catheter_volume_nl=0), "catheter_volume_nl")
    refused(rx_cont(catheter_volume_nl=drugs.MAX_CATHETER_NL + 1), "catheter_volume_nl")
    refused(rx_cont(mode="bolus"), "mode")
    refused(rx_cont(dose_mg_per_day=1), "dose_mg_per_day")  # a typo is not ignored
    refused(rx_cont(flex=[]), "flex")  # flex table with mode continuous
    rx = rx_cont()
    del rx["dose_ng_per_day"]
    e = refused(rx, "dose_ng_per_day")
    assert e.value is None
    e = raises(LimitError, prescription.Prescription, [1, 2])
    assert e.field == "prescription"


# -- basal range -----------------------------------------------------------------------------------
def test_basal_minimum_is_exact():
    # 0.048 mL/day of hydromorphone at 0.501 mg/mL is 24.048 ug/day exactly: at the limit passes,
    # 1 ng under (47998 nL/day) is refused though its rate rounds to the 2000 nL/h minimum
    hm = {"drug": "hydromorphone", "conc_ug_per_ml": 501}
    th = prescription.Prescription(rx_cont(dose_ng_per_day=24048, **hm))
    assert th.rates == [drugs.MIN_BASAL_NL_PER_H]
    prescription.Prescription(rx_cont(dose_ng_per_day=24049, **hm))
    e = refused(rx_cont(dose_ng_per_day=24047, **hm), "dose_ng_per_day")
    assert e.value == 24047 and e.limit == 24048
    assert "47998 nL/day" in str(e) and "under the device minimum 48000 nL/day" in str(e)
    assert prescription.rate_nl_per_h(24047, 501) == drugs.MIN_BASAL_NL_PER_H


def test_basal_maximum_is_exact():
    # 12 mL/day at 1 mg/mL = 12 mg/day: at the limit passes (500000 nL/h), 1 ng over is refused
    th = prescription.Prescription(rx_cont(conc_ug_per_ml=1000, dose_ng_per_day=12000000))
    assert th.rates == [drugs.MAX_BASAL_NL_PER_H] and th.day_volume_nl == drugs.MAX_DAILY_NL
    prescription.Prescription(rx_cont(conc_ug_per_ml=1000, dose_ng_per_day=11999999))
    e = refused(rx_cont(conc_ug_per_ml=1000, dose_ng_per_day=12000001), "dose_ng_per_day")
    assert e.value == 12000001 and e.limit == 12000000
    assert "12000001 nL/day" in str(e) and "over the basal maximum 12000000 nL/day" in str(e)
    # a flex step at 1.001 mg/mL: 1 ng over is 0.999 nL/day over, though its rate still rounds to 500000
    steps = [{"start_min": 0, "dose_ng_per_day": 500000}, {"start_min": 60, "dose_ng_per_day": 12012000}]
    th = prescription.Prescription(rx_flex(drug="morphine", conc_ug_per_ml=1001, flex=steps))
    assert th.rates[1] == drugs.MAX_BASAL_NL_PER_H
    steps[1]["dose_ng_per_day"] = 12012001
    e = refused(rx_flex(drug="morphine", conc_ug_per_ml=1001, flex=steps), "flex[1].dose_ng_per_day")
    assert e.value == 12012001 and e.limit == 12012000
    assert prescription.rate_nl_per_h(12012001, 1001) == drugs.MAX_BASAL_NL_PER_H


def test_one_ml_per_day_is_accepted():
    # exactly 1 mL/day rounds to 41667 nL/h: once refused against a 41666 nL/h limit
    th = prescription.Prescription(rx_cont(conc_ug_per_ml=10000, dose_ng_per_day=10000000))
    assert th.rates == [41667] and th.day_dose_ng == 10000000


def test_five_ml_per_day_is_programmable():
    # the accuracy run's 5 mL/day: morphine 5 mg/day at 1 mg/mL, dilute baclofen 500 ug/day at 100 ug/mL
    th = prescription.Prescription(rx_cont(conc_ug_per_ml=1000, dose_ng_per_day=5000000))
    assert th.rates == [208333] and th.day_volume_nl == 4999992  # 208333 nL/h x 24 h
    th = prescription.Prescription(rx_cont(drug="baclofen", conc_ug_per_ml=100, dose_ng_per_day=500000,
                           patient_bolus=patient(dose_ng=50000, duration_min=60, max_per_day=4)))
    assert th.rates == [208333] and th.patient.volume_nl == 500000


def test_daily_dose_floor():
    e = refused(rx_cont(drug="ziconotide", conc_ug_per_ml=5, dose_ng_per_day=200), "dose_ng_per_day")
    assert e.limit >= 200  # the device minimum rate bites first at 5 ug/mL
    e = refused(rx_periodic(periodic={"dose_ng": 1000, "every_h": 24, "start_min": 0, "duration_min": 10}),
                "total_ng_per_day")
    assert e.value == 1000 and e.limit == 10000


# -- flex ------------------------------------------------------------------------------------------
def test_flex_limits():
    refused(rx_flex(flex=[]), "flex")
    refused(rx_flex(flex={"start_min": 0}), "flex")
    steps = [{"start_min": i * 60, "dose_ng_per_day": 300000} for i in range(11)]
    refused(rx_flex(flex=steps), "flex")
    prescription.Prescription(rx_flex(flex=steps[:10]))
    refused(rx_flex(flex=[{"start_min": 5, "dose_ng_per_day": 300000}]), "flex[0].start_min")
    bad = [{"start_min": 0, "dose_ng_per_day": 300000}, {"start_min": 600, "dose_ng_per_day": 300000},
           {"start_min": 600, "dose_ng_per_day": 300000}]
    refused(rx_flex(flex=bad), "flex[2].start_min")
    bad = [{"start_min": 0, "dose_ng_per_day": 300000}, {"start_min": 1440, "dose_ng_per_day": 300000}]
    refused(rx_flex(flex=bad), "flex[1].start_min")
    bad = [{"start_min": 0, "dose_ng_per_day": 300000}, {"start_min": 60, "dose_ng_per_day": 2100000}]
    refused(rx_flex(flex=bad), "flex[1].dose_ng_per_day")
    bad = [{"start_min": 0, "dose_ng_per_day": 300000}, {"start_min": 60, "dose_ng_per_day": 0}]
    refused(rx_flex(flex=bad), "flex[1].dose_ng_per_day")
    bad = [{"start_min": 0, "dose_ng_per_day": 300000, "rate": 1}]
    refused(rx_flex(flex=bad), "flex[0].rate")
    refused(rx_flex(flex=[5]), "flex[0]")
    refused(rx_flex(dose_ng_per_day=300000), "dose_ng_per_day")


# -- periodic --------------------------------------------------------------------------------------
def test_periodic_limits():
    p = {"dose_ng": 50000, "every_h": 5, "start_min": 0, "duration_min": 10}
    e = refused(rx_periodic(periodic=p), "periodic.every_h")
    assert e.limit == prescription.PERIODS_H
    p = {"dose_ng": 50000, "every_h": 1, "start_min": 0, "duration_min": 60}
    refused(rx_periodic(periodic=p), "periodic.duration_min")
    p = {"dose_ng": 50000, "every_h": 6, "start_min": 1440, "duration_min": 10}
    refused(rx_periodic(periodic=p), "periodic.start_min")
    p = {"dose_ng": 600000, "every_h": 24, "start_min": 0, "duration_min": 600}
    e = refused(rx_periodic(periodic=p), "periodic.dose_ng")  # 1.2 mL in one bolus
    assert e.limit == 500000
    p = {"dose_ng": 400000, "every_h": 24, "start_min": 0, "duration_min": 30}
    e = refused(rx_periodic(periodic=p), "periodic.duration_min")  # 0.8 mL in 30 min = 1.6 mL/h
    assert e.limit == 48
    p["duration_min"] = 48
    prescription.Prescription(rx_periodic(periodic=p))
    # the bolus volume limit on the exact volume: 1 mL at 1.999 mg/mL is 1999 ug; 1 ng more is 0.5 nL over
    p = {"dose_ng": 1999000, "every_h": 24, "start_min": 0, "duration_min": 60}
    th = prescription.Prescription(rx_periodic(conc_ug_per_ml=1999, periodic=p))
    assert th.periodic.volume_nl == drugs.MAX_BOLUS_NL
    p["dose_ng"] = 1999001
    e = refused(rx_periodic(conc_ug_per_ml=1999, periodic=p), "periodic.dose_ng")
    assert e.value == 1999001 and e.limit == 1999000
    p = {"dose_ng": 50000, "every_h": 6, "start_min": 0, "duration_min": 10, "x": 1}
    refused(rx_periodic(periodic=p), "periodic.x")
    refused(rx_periodic(periodic=None), "periodic")
    refused(rx_cont(periodic={}), "periodic")


# -- patient bolus ---------------------------------------------------------------------------------
def test_patient_bolus_limits():
    refused(rx_cont(patient_bolus=patient(lockout_min=4)), "patient_bolus.lockout_min")  # < duration
    refused(rx_cont(patient_bolus=patient(lockout_min=1441)), "patient_bolus.lockout_min")
    refused(rx_cont(patient_bolus=patient(max_per_day=0)), "patient_bolus.max_per_day")
    refused(rx_cont(patient_bolus=patient(max_per_day=25)), "patient_bolus.max_per_day")
    refused(rx_cont(patient_bolus=patient(dose_ng=0)), "patient_bolus.dose_ng")
    refused(rx_cont(patient_bolus=patient(duration_min=0)), "patient_bolus.duration_min")
    refused(rx_cont(patient_bolus=patient(dose_ng="1")), "patient_bolus.dose_ng")
    p = patient()
    del p["lockout_min"]
    refused(rx_cont(patient_bolus=p), "patient_bolus.lockout_min")


# -- precedence: the first check to fail names the field -----------------------------------------
def test_every_flex_step_is_read_before_any_is_checked_against_the_basal_range():
    bad = [{"start_min": 0, "dose_ng_per_day": 300000}, {"start_min": 60, "dose_ng_per_day": 1},
           {"start_min": 30, "dose_ng_per_day": 300000}]
    refused(rx_flex(flex=bad), "flex[2].start_min")
    bad[2]["start_min"] = 120
    refused(rx_flex(flex=bad), "flex[1].dose_ng_per_day")


def test_the_daily_dose_floor_comes_before_the_patient_bolus_and_the_maximum_after_it():
    p = {"dose_ng": 1000, "every_h": 24, "start_min": 0, "duration_min": 10}
    refused(rx_periodic(periodic=p, patient_bolus=patient(lockout_min=1441)), "total_ng_per_day")
    rx = rx_cont(conc_ug_per_ml=20000, dose_ng_per_day=12000000,
                 patient_bolus=patient(dose_ng=1000000, max_per_day=4, lockout_min=1441))
    refused(rx, "patient_bolus.lockout_min")


# -- daily totals ----------------------------------------------------------------------------------
def test_total_daily_volume_limit_is_exact():
    # 12 x 1 mL periodic boluses of dilute baclofen (50 ug/mL) is exactly the 12 mL day
    p = {"dose_ng": 50000, "every_h": 2, "start_min": 0, "duration_min": 60}
    th = prescription.Prescription(rx_periodic(conc_ug_per_ml=50, periodic=p))
    assert th.day_volume_nl == drugs.MAX_DAILY_NL
    p["dose_ng"] = 49999  # just below
    prescription.Prescription(rx_periodic(conc_ug_per_ml=50, periodic=p))
    p["dose_ng"] = 50000  # plus the smallest background basal (48 uL/day): over
    p["duration_min"] = 61  # room for the basal under the hard rate
    e = refused(rx_periodic(conc_ug_per_ml=50, dose_ng_per_day=2400, periodic=p), "total_nl_per_day")
    assert e.value == 12048000 and e.limit == drugs.MAX_DAILY_NL
    assert "daily volume maximum" in str(e)
    # fractions of a nL count: at 1.001 mg/mL a 12.012 mg/day basal is exactly 12 mL/day, and a 1 ng patient
    # bolus (0.999 nL, rounded to 1 nL) takes the day over; 1 ng less basal brings it to exactly 12 mL
    pb = patient(dose_ng=1, duration_min=1, lockout_min=60, max_per_day=1)
    e = refused(rx_cont(conc_ug_per_ml=1001, dose_ng_per_day=12012000, patient_bolus=pb), "total_nl_per_day")
    assert e.value == 12000001 and e.limit == 12000000
    th = prescription.Prescription(rx_cont(conc_ug_per_ml=1001, dose_ng_per_day=12011999, patient_bolus=pb))
    assert th.patient.volume_nl == 1
    prescription.Prescription(rx_cont(conc_ug_per_ml=1001, dose_ng_per_day=12011998, patient_bolus=pb))


def test_total_daily_dose_counts_basal_and_boluses_together():
    # 12 mg/day basal + 4 x 1 mg patient boluses = 16 mg > 15 mg/day
    rx = rx_cont(conc_ug_per_ml=20000, dose_ng_per_day=12000000,
                 patient_bolus=patient(dose_ng=1000000, max_per_day=4))
    e = refused(rx, "total_ng_per_day")
    assert e.value == 16000000 and e.limit == 15000000
    rx["patient_bolus"]["max_per_day"] = 3
    assert prescription.Prescription(rx).day_dose_ng == 15000000
