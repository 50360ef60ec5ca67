"""pumpctl drugs (the firmware's drug library in clinical units) and history (prescriptions sent)."""

import datetime
import json

import pytest

from pumpctl import cli, history, prescription


def pc(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_drugs_shows_the_firmware_table_in_clinical_units(capsys):
    rc, out, err = pc(capsys, "drugs")
    assert rc == 0
    assert "morphine" in out and "1 mg/mL to 20 mg/mL" in out and "50 ug/day to 15 mg/day" in out
    assert "250 ng/day to 19.2 ug/day" in out  # ziconotide, exact
    rc, out, err = pc(capsys, "drugs", "--json")
    env = json.loads(out)
    assert rc == 0 and env["command"] == "drugs" and env["ok"] is True
    assert env["result"]["morphine"] == dict(zip(
        ("conc_min_ug_per_ml", "conc_max_ug_per_ml", "dose_min_ng_per_day", "dose_max_ng_per_day"),
        prescription.drugs_module().DRUGS["morphine"], strict=True))


def test_history_records_and_lists(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ITPUMP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    rc, out, err = pc(capsys, "history")
    assert rc == 0 and "no prescriptions sent" in out
    rx = prescription.load(prescription.REPO_ROOT / "examples" / "hydromorphone_patient_bolus.toml")
    t = datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.UTC)
    history.record("e6614c311b7d", 3, rx, "pumpctl program x.toml", who="dr_a", now=t)
    history.record("other", 1, rx, "web", who="dr_b", now=t)
    (tmp_path / "history.jsonl").open("a").write("not json\n")
    assert [e["who"] for e in history.entries()] == ["dr_a", "dr_b"]
    rc, out, err = pc(capsys, "history", "--device", "e6614c311b7d")
    assert rc == 0 and "dr_a" in out and "dr_b" not in out
    assert "2026-03-01 09:30" in out and "hydromorphone 5 mg/mL" in out and "patient bolus 25 ug" in out
    rc, out, err = pc(capsys, "history", "--json", "--last", "1")
    env = json.loads(out)
    assert rc == 0 and env["command"] == "history" and env["ok"] is True
    assert [e["who"] for e in env["result"]] == ["dr_b"]  # --last applies to --json as to the table
    with pytest.raises(SystemExit) as e:
        cli.main(["history", "--last", "-1"])
    assert e.value.code == 2 and "'-1' is not a whole number" in capsys.readouterr().err
