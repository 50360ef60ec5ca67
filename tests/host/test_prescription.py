"""Host prescriptions: TOML -> dict validated by the firmware's own therapy module, and the diff rows."""

from pathlib import Path

import pytest

from pumpctl import REPO_ROOT, PumpctlError, prescription

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.toml"))

BASE = """
drug = "morphine"
conc_ug_per_ml = 10_000
catheter_volume_nl = 200_000
mode = "continuous"
dose_ng_per_day = 1_000_000
"""


def test_examples_exist_for_each_mode():
    names = {p.stem for p in EXAMPLES}
    assert {"morphine_continuous", "baclofen_flex", "hydromorphone_patient_bolus"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates(path):
    rx = prescription.load(path)
    assert rx["drug"] and rx["mode"] in ("continuous", "flex", "periodic")
    assert prescription.summary(rx)["day_volume_nl"] > 0


def test_example_contents():
    rx = prescription.load(REPO_ROOT / "examples" / "baclofen_flex.toml")
    assert [s["start_min"] for s in rx["flex"]] == [0, 360, 540, 1260]
    assert prescription.summary(rx)["basal_nl_per_h"][0] == 10417  # 500 ug/day at 2 mg/mL
    rx = prescription.load(REPO_ROOT / "examples" / "hydromorphone_patient_bolus.toml")
    assert rx["patient_bolus"] == {"dose_ng": 25000, "duration_min": 10, "lockout_min": 120, "max_per_day": 4}
    s = prescription.summary(prescription.load(REPO_ROOT / "examples" / "baclofen_dilute_5ml_per_day.toml"))
    assert s["basal_nl_per_h"] == [208333] and s["day_volume_nl"] == 4999992  # 5 mL/day, rate rounded down


def test_volume_limits_are_exact_on_the_host_too():
    """The host validates with the firmware module: at the 12 mL/day limit passes, 1 ng over is refused
    with the field, value and limit the pump would report."""
    at = BASE.replace("10_000", "1_000").replace("1_000_000", "12_000_000")
    assert prescription.summary(prescription.loads(at))["basal_nl_per_h"] == [500000]
    prescription.loads(at.replace("12_000_000", "11_999_999"))
    with pytest.raises(prescription.PrescriptionError) as ei:
        prescription.loads(at.replace("12_000_000", "12_000_001"))
    assert (ei.value.field, ei.value.value, ei.value.limit) == ("dose_ng_per_day", 12000001, 12000000)
    assert "dose_ng_per_day = 12000001: gives 12.000001 mL/day" in str(ei.value)
    assert "over the basal maximum 12 mL/day; maximum 12000000 ng/day" in str(ei.value)
    prescription.loads(BASE.replace("1_000_000", "10_000_000"))  # exactly 1 mL/day (41666.67 nL/h): accepted


def test_validation_is_the_firmware_module():
    t = prescription.prescription_module()
    assert Path(t.__file__).resolve() == (REPO_ROOT / "firmware" / "itpump" / "prescription.py").resolve()


def test_limit_error_carries_field_value_limit():
    with pytest.raises(prescription.PrescriptionError) as ei:
        prescription.loads(BASE.replace("10_000", "30_000"), "x.toml")
    e = ei.value
    assert isinstance(e, PumpctlError)
    assert (e.field, e.value, e.limit) == ("conc_ug_per_ml", 30000, 20000)
    assert str(e).startswith("x.toml: conc_ug_per_ml = 30000")


def test_float_and_typo_refused():
    with pytest.raises(prescription.PrescriptionError) as ei:
        prescription.loads(BASE.replace("1_000_000", "1.5"))
    assert ei.value.field == "dose_ng_per_day" and "not a whole ng/day" in str(ei.value)
    with pytest.raises(prescription.PrescriptionError, match="given twice"):
        prescription.loads(BASE + "dose_ug_per_day = 1\n")
    with pytest.raises(prescription.PrescriptionError, match="unknown field; allowed here: .*catheter_volume") as ei:
        prescription.loads(BASE + "dose_ug_per_dya = 1\n")
    assert ei.value.field == "dose_ug_per_dya"


def test_bad_toml_and_missing_file():
    with pytest.raises(prescription.PrescriptionError, match="not valid TOML"):
        prescription.loads("drug = ", "bad.toml")
    with pytest.raises(prescription.PrescriptionError, match="cannot read"):
        prescription.load(REPO_ROOT / "examples" / "no_such.toml")


def test_load_returns_a_plain_json_dict(tmp_path):
    import json

    f = tmp_path / "rx.toml"
    f.write_text(BASE + "\n[patient_bolus]\ndose_ng = 100_000\nduration_min = 5\nlockout_min = 60\n"
                 "max_per_day = 3\n")
    rx = prescription.load(f)
    assert json.loads(json.dumps(rx)) == rx
    assert rx["patient_bolus"]["max_per_day"] == 3


def test_diff_rows_mark_changes_and_derived_figures():
    old = prescription.loads(BASE)
    new = prescription.loads(BASE.replace("1_000_000", "1_500_000"))
    rows = {r[0]: r[1:] for r in prescription.diff(old, new)}
    assert rows["dose"] == ("1 mg/day", "1.5 mg/day", True)
    assert rows["drug"] == ("morphine", "morphine", False)
    assert rows["=basal rate"] == ("4.167 uL/h", "6.250 uL/h", True)
    assert rows["=daily volume"] == ("0.100008 mL/day", "0.15 mL/day", True)
    assert [r[0] for r in prescription.diff(old, new)][:4] == ["drug", "concentration", "catheter_volume", "mode"]


def test_diff_flex_steps_and_first_programming():
    new = prescription.load(REPO_ROOT / "examples" / "baclofen_flex.toml")
    rows = prescription.diff(None, new)
    assert all(r[1] is None and r[3] for r in rows)
    fields = [r[0] for r in rows]
    i = fields.index
    assert i("flex[0].start") < i("flex[0].dose") < i("flex[1].start") < i("flex[3].dose")
    shorter = dict(new, flex=new["flex"][:2])
    rows = {r[0]: r[1:] for r in prescription.diff(new, shorter)}
    assert rows["flex[3].start"] == ("21:00", None, True)
    assert rows["flex[0].start"] == ("00:00", "00:00", False)


def test_diff_refuses_an_invalid_side():
    with pytest.raises(prescription.PrescriptionError):
        prescription.diff(prescription.loads(BASE), {"drug": "morphine"})
