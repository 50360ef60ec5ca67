"""Clinical units <-> pump integers (units.py) and prescriptions written in them: exact both ways,
refused with what was typed, and `therapy --toml` output loading back to the same prescription."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl import prescription, units

RX = """
drug = "morphine"
concentration = "10 mg/mL"
catheter_volume = "0.2 mL"
mode = "continuous"
"""


@pytest.mark.parametrize("text,kind,pump", [
    ("1.2 mg/day", "dose_rate", 1_200_000), ("50 ug/day", "dose_rate", 50_000), ("1 mg/h", "dose_rate", 24_000_000),
    ("0.5 mcg/day", "dose_rate", 500), ("50 ug", "mass", 50_000), ("0.025 mg", "mass", 25_000),
    ("10 mg/mL", "conc", 10_000), ("500 ug/mL", "conc", 500), ("2 mg/ml", "conc", 2000), ("0.2 mL", "volume", 200_000),
    ("250 uL", "volume", 250_000), ("10 min", "duration", 10), ("2 h", "duration", 120), ("1 day", "duration", 1440),
    ("06:30", "time_of_day", 390), ("1_000 ug/day", "dose_rate", 1_000_000), ("1e-3 mg/day", "dose_rate", 1000),
])
def test_typed_text_converts_exactly(text, kind, pump):
    assert units.to_pump(text, kind, "k") == pump


def test_numbers_with_the_unit_in_the_key_convert_from_their_decimal_text():
    assert units.to_pump(1.2, "dose_rate", "dose_mg_per_day", "mg/day") == 1_200_000  # not 1199999.99...
    assert units.to_pump(0.1, "volume", "v", "mL") == 100_000
    assert units.to_pump(3, "duration", "d", "h") == 180


@pytest.mark.parametrize("value,kind,unit,msg", [
    ("1.0000001 mg/day", "dose_rate", None, 'k = "1.0000001 mg/day": not a whole ng/day'),
    ("0.5 nL", "volume", None, 'k = "0.5 nL": not a whole nL'),
    ("1.5 min", "duration", None, "not a whole min"),
    ("10", "dose_rate", None, "not a number with a unit"),
    (10, "dose_rate", None, "give the unit too"),
    ("3 mL/day", "dose_rate", None, "'mL/day' is not a unit of dose rate"),
    ("10 mg", "conc", None, "not a unit of conc"),
    ("24:00", "time_of_day", None, "not a time of day"),
    ("1e12 mg/day", "dose_rate", None, "far over any limit"),
    ("1", "dose_rate", "mg/day", "must be a number"),
    (True, "dose_rate", "mg/day", "must be a number"),
])
def test_refusals_name_the_typed_value(value, kind, unit, msg):
    with pytest.raises(units.UnitError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        units.to_pump(value, kind, "k", unit)


def test_formatting_is_exact_and_reads_back():
    assert units.fmt_dose_rate(1_200_000) == "1.2 mg/day"
    assert units.fmt_dose_rate(250) == "250 ng/day"
    assert units.fmt_mass(25_000) == "25 ug"
    assert units.fmt_conc(1500) == "1.5 mg/mL" and units.fmt_conc(50) == "50 ug/mL"
    assert units.fmt_volume(200_000) == "0.2 mL" and units.fmt_volume(5000) == "5 uL" and units.fmt_volume(7) == "7 nL"
    assert units.fmt_duration(90) == "90 min" and units.fmt_duration(120) == "2 h"
    assert units.in_unit(15_000_000, "dose_rate", "mg/day") == "15 mg/day"
    assert units.in_unit(1, "dose_rate", "mg/h") == "1 ng/day"  # not exact in mg/h: the pump's unit
    for v in (1, 7, 999, 1000, 1_234_567, 19200):
        assert units.to_pump(units.fmt_dose_rate(v), "dose_rate", "k") == v
    assert units.clinical_text("gives 1000 nL/day (42 nL/h), under 48000 nL/day") == \
        "gives 1 uL/day (0.042 uL/h), under 48 uL/day"


def test_prescription_in_clinical_units_equals_the_pump_integers():
    a = prescription.loads(RX + 'dose = "1 mg/day"\npatient_bolus = { dose = "50 ug", over = "10 min", '
                           'lockout = "2 h", max_per_day = 4 }\n')
    b = prescription.loads('drug = "morphine"\nconc_ug_per_ml = 10000\ncatheter_volume_nl = 200000\n'
                           'mode = "continuous"\n'
                           "dose_ng_per_day = 1000000\n[patient_bolus]\ndose_ng = 50000\nduration_min = 10\n"
                           "lockout_min = 120\nmax_per_day = 4\n")
    assert a == b
    c = prescription.loads(RX.replace('concentration = "10 mg/mL"', "conc_mg_per_ml = 10") + "dose_mg_per_day = 1\n"
                           '[patient_bolus]\ndose_ug = 50\nduration_min = 10\nlockout_h = 2\nmax_per_day = 4\n')
    assert c == a


def test_refusals_over_a_limit_speak_the_typed_unit():
    with pytest.raises(prescription.PrescriptionError) as ei:
        prescription.loads(RX + 'dose = "16 mg/day"\n', "rx.toml")
    assert str(ei.value) == 'rx.toml: dose = "16 mg/day": above the maximum for morphine 15 mg/day'
    assert (ei.value.field, ei.value.value, ei.value.limit) == ("dose_ng_per_day", 16_000_000, 15_000_000)
    with pytest.raises(prescription.PrescriptionError,
                       match='dose_ug_per_day = 20: gives 2 uL/day .* minimum 480 ug/day'):
        prescription.loads(RX + "dose_ug_per_day = 20\n")
    with pytest.raises(prescription.PrescriptionError,
                       match='concentration = "25 mg/mL": above the maximum for morphine 20 mg/mL'):
        prescription.loads(RX.replace("10 mg/mL", "25 mg/mL") + 'dose = "1 mg/day"\n')
    with pytest.raises(prescription.PrescriptionError,
                       match=r'periodic.every = "5 h": must divide the day; one of \(1, 2'):
        prescription.loads(RX.replace("continuous", "periodic") + 'dose = "1 mg/day"\n[periodic]\ndose = "50 ug"\n'
                'every = "5 h"\nstart = "02:00"\nover = "15 min"\n')
    with pytest.raises(prescription.PrescriptionError, match='every = "90 min": must be a whole number of hours'):
        prescription.loads(RX.replace("continuous", "periodic") + 'dose = "1 mg/day"\n[periodic]\ndose = "50 ug"\n'
                'every = "90 min"\nstart = "02:00"\nover = "15 min"\n')


# -- round trip: the running prescription written as a file loads back to the same prescription -------

DRUGS = prescription.drugs_module().DRUGS


@st.composite
def prescriptions(draw):
    drug = draw(st.sampled_from(sorted(DRUGS)))
    cmin, cmax, dmin, dmax = DRUGS[drug]
    conc = draw(st.integers(cmin, cmax))
    # daily doses whose volume sits inside the device's basal range at this concentration
    lo, hi = max(dmin, -(-48_000 * conc // 1000)), min(dmax, 12_000_000 * conc // 1000)
    if lo > hi:
        lo, hi = dmin, dmax
    dose = st.integers(lo, hi)
    rx = {"drug": drug, "conc_ug_per_ml": conc, "catheter_volume_nl": draw(st.integers(1, 1_000_000)),
          "mode": draw(st.sampled_from(["continuous", "flex", "periodic"]))}
    if rx["mode"] == "flex":
        starts = sorted(draw(st.sets(st.integers(1, 1439), max_size=4)))
        rx["flex"] = [{"start_min": s, "dose_ng_per_day": draw(dose)} for s in [0, *starts]]
    else:
        rx["dose_ng_per_day"] = draw(dose)
    if rx["mode"] == "periodic":
        every = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24]))
        rx["periodic"] = {"dose_ng": draw(st.integers(1, max(1, dmax // 50))), "every_h": every,
                          "start_min": draw(st.integers(0, 1439)),
                          "duration_min": draw(st.integers(1, every * 60 - 1))}
    if draw(st.booleans()):
        d = draw(st.integers(1, 1440))
        rx["patient_bolus"] = {"dose_ng": draw(st.integers(1, max(1, dmax // 50))), "duration_min": d,
                               "lockout_min": draw(st.integers(d, 1440)), "max_per_day": draw(st.integers(1, 24))}
    try:
        return prescription.validate(rx)
    except prescription.PrescriptionError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(prescriptions().filter(lambda rx: rx is not None))
def test_to_toml_loads_back_to_the_same_prescription(rx):
    text = prescription.to_toml(rx, "written by a test")
    assert prescription.loads(text) == rx
    assert "_ng" not in text and "_nl" not in text  # clinical units only
