"""pumpctl therapy commands against the real firmware app on a fake board (no serial port): arguments
become the right signed requests, bad input sends nothing, errors are one line, logs page and export."""

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
from test_client_signed import AppLink

from itpump import eventlog
from pumpctl import PumpctlError, cli, keys, render, session, units
from pumpctl import link as linkmod

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def board(tmp_path, monkeypatch):
    monkeypatch.setenv(keys.ENV_DIR, str(tmp_path / "keys"))
    ks = keys.provision("fake-0001")
    lk = AppLink(ks)
    monkeypatch.setattr(linkmod, "Link", lambda port, *a, **kw: lk)
    lk.ks = ks
    yield lk
    lk.close()


def pc(capsys, *args):
    rc = cli.main([*args, "--port", "fake"])
    out, err = capsys.readouterr()
    return rc, out, err


def sent(lk):
    """(op, args, role) of each signed request sent."""
    out = []
    for w in lk.changes():
        b = json.loads(w.split(b"\t")[0])
        out.append((b["op"], b.get("args"), b["role"]))
    return out


def programmed(board, capsys, rx="examples/hydromorphone_patient_bolus.toml"):
    rc, out, err = pc(capsys, "refill", "--drug", "hydromorphone", "--conc-ug-per-ml", "5000",
                      "--added-ml", "20", "--removed-ml", "0")
    assert rc == 0, err
    rc, out, err = pc(capsys, "program", str(ROOT / rx), "--yes")
    assert rc == 0, err
    return out


# -- amounts ----------------------------------------------------------------------------------------


def test_amounts_become_exact_integers_or_are_refused():
    assert units.parse_amount("2.5", 1000, "x") == 2500
    assert units.parse_amount("20", 1_000_000, "x") == 20_000_000
    assert units.parse_amount("0.000001", 1_000_000, "x") == 1
    assert units.parse_amount("0", 1_000_000, "x", minimum=0) == 0
    for bad, msg in (("abc", "not a number"), ("nan", "not a number"), ("0.0001", "finer than"),
                     ("0", "at least"), ("-1", "at least")):
        with pytest.raises(PumpctlError, match=msg):
            units.parse_amount(bad, 1000, "--dose-ug")


def test_bolus_arguments():
    assert session.bolus_args("25", 10) == {"kind": "clinician", "dose_ng": 25000, "duration_min": 10}
    assert session.bolus_args(None, 5, prime=True) == {"kind": "prime", "duration_min": 5}
    assert session.bolus_args(None, 5, True, "150.5") == {"kind": "prime", "duration_min": 5, "volume_nl": 150500}
    assert session.bolus_args("25", "1440")["duration_min"] == 1440
    for kw, msg in (({"dose_ug": "1"}, "--minutes"),
                    ({"dose_ug": "1", "minutes": 0}, "--minutes 0: must be at least 1"),
                    ({"dose_ug": "1", "minutes": "1441"}, "--minutes 1441: must be at most 1440"),
                    ({"dose_ug": "1", "minutes": "1.5"}, "--minutes 1.5: finer than the pump's step of 1"),
                    ({"minutes": "x", "prime": True}, "--minutes 'x' is not a number"),
                    ({"minutes": 5}, "--dose-ug"), ({"dose_ug": "1", "minutes": 5, "prime": True}, "not --dose-ug"),
                    ({"dose_ug": "1", "minutes": 5, "volume_ul": "3"}, "--volume-ul is for --prime")):
        with pytest.raises(PumpctlError, match=msg):
            session.bolus_args(**kw)


def test_water_density_table_and_interpolation():
    assert units.water_density_ug_per_ml("20") == 998203 and units.water_density_ug_per_ml(15) == 999099
    assert units.water_density_ug_per_ml("30") == 995645
    # 20.5 C: halfway between 998203 and 997991 is 998097, rounded down (more volume, never less)
    assert units.water_density_ug_per_ml("20.5") == 998097
    assert units.water_density_ug_per_ml("20.3") == 998203 - 64  # 63.6 rounded up off the density
    prev = 10**6
    for t in range(150, 301):  # strictly decreasing over the table's range, in 0.1 C steps
        d = units.water_density_ug_per_ml(f"{t // 10}.{t % 10}")
        assert 995000 < d < prev
        prev = d


def test_mass_becomes_nl_through_the_density_rounded_up():
    # 3210 mg at 20 C: 3210 / 0.998203 = 3215.7789 uL -> 3215779 nL (up); 1 mg is not 1 uL
    assert units.mass_to_nl("3210", "20") == (3215779, 998203)
    assert units.mass_to_nl("3210", 25) == (3219521, 997043)  # 3219.5201: warmer water, more volume
    assert units.mass_to_nl("998.203", 20) == (1_000_000, 998203)  # exact: no rounding
    assert units.mass_to_nl("998.204", 20)[0] == 1_000_002  # 1000001.002 rounds up
    assert session.calibrate_args(None, 192000, "9630.5") == {"measured_nl": 9647838, "steps": 192000}
    assert session.calibrate_args(None, 192000, "9630.5", "22.5")["measured_nl"] == 9653156  # 0.997653 at 22.5 C
    assert session.calibrate_args("210", 10000) == {"measured_nl": 210000, "steps": 10000}  # the volume form
    for args, msg in (((None, 100, "0"), "at least"), ((None, 100, "-3"), "at least"),
                      ((None, 100, "abc"), "not a number"), ((None, 100, "5", "14.9"), "outside the density table"),
                      ((None, 100, "5", "30.1"), "15..30 C"), ((None, 100, "5", "-4"), "outside"),
                      ((None, 100, "5", "nan"), "not a number"), ((None, 100, "5", "20.05"), "finer"),
                      (("5", 100, "5"), "either"), ((None, 100), "give --mass-mg X .* or --measured-ul V"),
                      (("5", 100, None, "20"), "goes with --mass-mg"), ((None, 0, "5"), "--steps")):
        with pytest.raises(PumpctlError, match=msg):
            session.calibrate_args(*args)


def test_time_sync_uses_the_host_clock_and_offset():
    assert session.time_sync_args(1704090600.7, 60) == {"unix_s": 1704090600, "tz_min": 60}
    a = session.time_sync_args()
    assert a["unix_s"] > 1704090600 and -720 <= a["tz_min"] <= 840


# -- commands ---------------------------------------------------------------------------------------


def test_refill_program_and_status(board, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the status table on one line per row, as a wide terminal shows it
    out = programmed(board, capsys)
    assert "dose" in out and "500 ug/day" in out  # the diff against nothing, in clinical units
    assert "hydromorphone" in out and "5 mg/mL" in out  # the summary after
    assert [s[0] for s in sent(board)] == ["refill", "program"]
    assert sent(board)[0][1] == {"drug": "hydromorphone", "conc_ug_per_ml": 5000, "added_nl": 20000000,
                                 "removed_nl": 0}
    board.run_ms(60_000)
    rc, out, err = pc(capsys, "status")
    assert rc == 0
    for text in ("hydromorphone 5 mg/mL", "continuous (running)", "4.167 uL/h", "days to empty", "refill by",
                 "alarms", "keys", "ok"):
        assert text in out, (text, out)
    assert "ug/mL" not in out  # the clinician's unit (prescription files, therapy view), not the pump's
    rc, js, err = pc(capsys, "status", "--json")
    left_nl = json.loads(js)["result"]["reservoir_nl"]
    assert left_nl % 1000  # a figure between two shown steps: it must not be rounded up
    assert f"{left_nl // 1000 / 1000:.3f} mL of hydromorphone 5 mg/mL" in out  # what is left, never overstated
    rc, out, err = pc(capsys, "therapy")
    assert rc == 0 and "patient bolus" in out and "5 uL at 30 uL/h" in out


def test_program_shows_the_diff_and_sends_nothing_unless_confirmed(board, capsys, monkeypatch, tmp_path):
    programmed(board, capsys)
    new = tmp_path / "rx.toml"
    new.write_text((ROOT / "examples/hydromorphone_patient_bolus.toml").read_text()
                   .replace('dose = "0.5 mg/day"', 'dose = "0.6 mg/day"'))
    n = len(board.written)
    monkeypatch.setattr("builtins.input", lambda *a: "n")
    monkeypatch.setattr("rich.console.Console.input", lambda self, *a, **k: "n")
    rc, out, err = pc(capsys, "program", str(new))
    assert rc == 1 and err.strip().endswith("pumpctl: error: not confirmed: nothing sent")
    assert "600 ug/day" in out and "500 ug/day" in out
    assert len(board.changes()) == 2 and board.app.doc.rx_id == 1  # refill + first program only
    monkeypatch.setattr("rich.console.Console.input", lambda self, *a, **k: "y")
    rc, out, err = pc(capsys, "program", str(new))
    assert rc == 0 and board.app.doc.rx_id == 2 and board.app.pump.therapy.day_dose_ng >= 600000
    assert len(board.written) > n


def test_an_invalid_prescription_never_reaches_the_board(board, capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "examples/morphine_continuous.toml").read_text()
                   .replace('dose = "1 mg/day"', 'dose = "99 mg/day"'))
    rc, out, err = pc(capsys, "program", str(bad), "--yes")
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert 'dose = "99 mg/day": above the maximum for morphine 15 mg/day' in err  # as typed, not as ng
    assert board.written == [] and board.ks.counters()["clinician"] == 0


def test_bolus_kinds_and_roles(board, capsys):
    programmed(board, capsys)
    rc, out, err = pc(capsys, "bolus", "--patient")
    assert rc == 0 and "patient bolus started: 5.0 uL" in out
    rc, out, err = pc(capsys, "bolus", "--patient")  # the bolus still runs
    assert rc == 4 and "BUSY" in err  # refused by the board
    board.run_ms(11 * 60_000)
    rc, out, err = pc(capsys, "bolus", "--patient")
    assert rc == 4 and err.startswith("pumpctl: error: patient_bolus: LOCKOUT")
    rc, out, err = pc(capsys, "bolus", "--dose-ug", "2.5", "--minutes", "5")
    assert rc == 0 and "clinician bolus started: 0.5 uL" in out
    assert sent(board)[-1] == ("bolus", {"kind": "clinician", "dose_ng": 2500, "duration_min": 5}, "clinician")
    roles = [s[2] for s in sent(board) if s[0] == "patient_bolus"]
    assert roles == ["patient"] * 3


def test_a_value_the_board_refuses_is_told_by_the_option_typed_in_clinical_units(board, capsys):
    """A LIMIT refusal read 'bolus: LIMIT: duration_min = 1: too short: 1200000 nL/h plus basal is over
    the device maximum 1000000 nL/h; minimum 2': the pump's field and units, not what was typed."""
    programmed(board, capsys)
    rc, out, err = pc(capsys, "bolus", "--dose-ug", "100", "--minutes", "1")
    assert rc == 4 and err == ("pumpctl: error: bolus: --minutes 1: too short: 1200 uL/h plus basal is over "
                               "the device maximum 1000 uL/h; minimum 2\n"), err
    assert "nL" not in err and "duration_min" not in err and err.count("\n") == 1
    rc, out, err = pc(capsys, "calibrate", "--measured-ul", "1", "--steps", "10")
    assert rc == 4 and err == ("pumpctl: error: calibrate: --measured-ul 1: too small for a 1 % calibration; "
                               "minimum 100\n")
    assert session.limit_text("patient_bolus.dose_ng = 5: below 2000 nL", session.OPTIONS) == \
        "patient_bolus.dose_ng = 5: below 2 uL"  # a field no option names: only the units change
    assert session.limit_text("volume_nl = 2500: above the maximum 2000", session.OPTIONS) == \
        "--volume-ul 2.5: above the maximum 2"


def test_a_refill_outside_the_drug_library_is_refused_before_sending(board, capsys):
    """With a prescription running, 10 typed for 10 mg/mL was told it "needs its prescription (rx)", as if
    the fix were a prescription at 10 ug/mL; a misspelt drug cost a signed request to be refused."""
    programmed(board, capsys)
    n = len(board.changes())
    for drug, conc, msg in (("morfine", "10000", "refill: --drug morfine: not in the drug library (did you mean "
                                                 "morphine?); pumpctl drugs lists them"),
                            ("Baclofen", "2000", "(did you mean baclofen?)"),
                            ("hydromorphone", "5", "refill: --conc-ug-per-ml 5: below the minimum 500 ug/mL "
                                                   "(hydromorphone comes at 500 ug/mL to 15 mg/mL)")):
        rc, out, err = pc(capsys, "refill", "--drug", drug, "--conc-ug-per-ml", conc, "--added-ml", "5",
                          "--removed-ml", "0")
        assert rc == 1 and msg in err and err.count("\n") == 1, err
    assert len(board.changes()) == n  # nothing signed, nothing sent


def test_bad_input_sends_nothing_and_costs_no_counter(board, capsys):
    """A bad value is exit 1; a malformed or missing argument, or two that do not go together, exit 2
    (README: Exit codes)."""
    for rc_wanted, args in ((2, ("bolus", "--dose-ug", "abc", "--minutes", "5")),
                            (2, ("bolus", "--patient", "--minutes", "5")),
                            (1, ("refill", "--drug", "morphine", "--conc-ug-per-ml", "1.5", "--added-ml", "1",
                                 "--removed-ml", "0")),
                            (1, ("refill", "--drug", "morphine", "--conc-ug-per-ml", "10000", "--added-ml", "0",
                                 "--removed-ml", "0")),
                            (1, ("calibrate", "--measured-ul", "1e-9", "--steps", "10")),
                            (2, ("calibrate", "--measured-ul", "100", "--steps", "0")),
                            (1, ("calibrate", "--mass-mg", "0", "--steps", "10000")),
                            (1, ("calibrate", "--mass-mg", "-210", "--steps", "10000")),
                            (1, ("calibrate", "--mass-mg", "210", "--water-temp-c", "35", "--steps", "10000")),
                            (2, ("calibrate", "--mass-mg", "210", "--measured-ul", "210", "--steps", "10000")),
                            (2, ("calibrate", "--steps", "10000"))):
        try:
            rc, out, err = pc(capsys, *args)
        except SystemExit as e:  # refused by the parser itself
            rc, err = e.code, capsys.readouterr().err
        assert rc == rc_wanted and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert board.written == [] and board.ks.counters() == {"patient": 0, "clinician": 0, "service": 0}


def test_suspend_resume_calibrate_time_ack_service(board, capsys):
    programmed(board, capsys)
    assert pc(capsys, "suspend")[1].strip() == "delivery suspended"
    assert board.app.pump.therapy.suspended
    assert pc(capsys, "resume")[1].strip() == "delivery resumed"
    rc, out, err = pc(capsys, "calibrate", "--measured-ul", "210", "--steps", "10000")
    assert rc == 0 and "21000 pL/step (was 20000)" in out
    # the mass the balance reads: 210 mg at 22 C is 210.467 uL (density 0.997769), 21047 pL/step (up)
    rc, out, err = pc(capsys, "calibrate", "--mass-mg", "210", "--water-temp-c", "22", "--steps", "10000")
    assert rc == 0, err
    assert "density 0.997769 mg/uL" in out and "210.470 uL (210470 nL, rounded up)" in out
    assert "21047 pL/step (was 21000)" in out
    assert sent(board)[-1] == ("calibrate", {"measured_nl": 210470, "steps": 10000}, "clinician")
    assert board.app.pump.dosing.pl_per_step == 21047
    rc, out, err = pc(capsys, "calibrate", "--mass-mg", "209.6", "--steps", "10000")  # 20 C by default
    assert rc == 0 and "density 0.998203 mg/uL" in out and sent(board)[-1][1]["measured_nl"] == 209978
    rc, out, err = pc(capsys, "time", "sync")
    assert rc == 0 and "board clock set to" in out and board.app.time.source == "host"
    rc, out, err = pc(capsys, "ack", "OCCLUSION")
    assert rc == 4 and "not active" in err
    rc, out, err = pc(capsys, "alarms")
    assert rc == 0 and "no active alarms" in out
    rc, out, err = pc(capsys, "service")
    assert rc == 0 and "REPL open" in out and sent(board)[-1][2] == "service"


def test_alarms_table_and_ack(board, capsys):
    from itpump import alarms

    programmed(board, capsys)
    board.app.alarms.raise_alarm(alarms.WATCHDOG_RESET)
    rc, out, err = pc(capsys, "alarms", "--recent")
    prio = alarms.PRIORITY_NAMES[alarms.priority(alarms.WATCHDOG_RESET)]
    assert rc == 0 and "WATCHDOG_RESET" in out and prio in out and "raise" in out  # table + recent
    rc, out, err = pc(capsys, "ack", "WATCHDOG_RESET")
    assert rc == 0 and "acknowledged: WATCHDOG_RESET" in out


def test_no_keys_on_the_board_says_provision(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(keys.ENV_DIR, str(tmp_path / "keys"))
    keys.provision("fake-0001")
    lk = AppLink(None)
    monkeypatch.setattr(linkmod, "Link", lambda port, *a, **kw: lk)
    try:
        rc, out, err = pc(capsys, "suspend")
        assert rc == 4 and err == "pumpctl: error: suspend: board has no keys: run pumpctl provision\n"
    finally:
        lk.close()


def test_provision_is_refused_while_therapy_runs(board, capsys):
    programmed(board, capsys)
    board.run_ms(2000)
    before = board.ks.path.read_bytes()
    rc, out, err = pc(capsys, "provision", "--force")
    assert rc == 4 and "therapy is running" in err  # README: refused for the board, exit 4
    assert board.ks.path.read_bytes() == before


def test_provision_without_force_keeps_existing_keys(board, capsys):
    rc, out, err = pc(capsys, "provision")
    assert rc == 1 and "refusing to replace" in err and "--force" in err


@pytest.mark.parametrize("kind, budget_s", [("frozen", 4.0), ("mpy", 6.0), ("py", 15.0)])
def test_provision_waits_for_the_restart_by_timeout_and_boot_budget(board, monkeypatch, capsys, kind, budget_s):
    """A slow .py boot on a Pico takes ~7 s of chip time: the restart wait follows --timeout plus what
    the installed firmware needs to boot, not a fixed 10 s."""
    from pumpctl import client as clientmod
    from pumpctl import mpr

    class FakeDevice:
        files: dict = {}

        def __init__(self, port):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def is_sim(self):
            return False

        def firmware_kind(self):
            return kind

        def write_file(self, path, data):
            self.files[path] = data

        def sha256(self, path):
            return mpr.local_sha256(self.files[path])

        def soft_reset(self):
            pass

    waits = []

    def wait_ready(self, timeout_s):
        waits.append(timeout_s)
        return {"keys": "ok"}

    monkeypatch.setattr(mpr, "Device", FakeDevice)
    monkeypatch.setattr(clientmod.Client, "wait_ready", wait_ready)
    rc, out, err = pc(capsys, "provision", "--force", "--timeout", "7")
    assert rc == 0, err
    assert "/keys.json" in FakeDevice.files
    assert waits == [7 + budget_s]


# -- logs -------------------------------------------------------------------------------------------


def test_logs_page_through_everything_and_export(board, capsys, tmp_path):
    programmed(board, capsys)
    for _ in range(30):
        pc(capsys, "bolus", "--patient")  # refused: each one logged
    last = board.app.log.seq
    assert last > 30
    out_csv = tmp_path / "log.csv"
    png = tmp_path / "log.png"
    rc, out, err = pc(capsys, "logs", "--format", "csv", "--out", str(out_csv), "--page", "7", "--plot", str(png))
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [int(r["seq"]) for r in rows] == list(range(1, last + 1))
    pages = -(-last // 7)
    assert f"read {last} records" in err and f"{pages} pages" in err
    assert png.stat().st_size > 1000
    rc, out, err = pc(capsys, "logs", "--since", str(last - 2), "--format", "json")
    assert [r["seq"] for r in json.loads(out)] == [last - 1, last]
    with pytest.raises(SystemExit) as e:  # refused by the parser, before the link is opened
        pc(capsys, "logs", "--page", "500")
    assert e.value.code == 2 and "1..200" in capsys.readouterr().err


def test_log_problems_go_to_stderr_exit_1_and_the_rest_is_kept(board, capsys, tmp_path, monkeypatch):
    programmed(board, capsys)
    real = board.app.log.read

    def damaged(since, n):
        recs, problems = real(since, n)
        return recs, problems + ["ev00000001.log record #3 (after seq 2) at byte 40: corrupt data, 9 bytes skipped"]

    monkeypatch.setattr(board.app.log, "read", damaged)
    out_json = tmp_path / "log.json"
    rc, out, err = pc(capsys, "logs", "--format", "json", "--out", str(out_json))
    assert rc == 1
    assert "pumpctl: log problem: board: ev00000001.log record #3" in err
    assert err.count("corrupt data") == 1  # reported once, not per page
    assert len(json.loads(out_json.read_text())) == board.app.log.seq
    rc, out, err = pc(capsys, "logs", "--json")  # the envelope: what was read beside the error, ok false
    env = json.loads(out)
    assert rc == 1 and env["ok"] is False and env["error"]["message"].startswith("1 log problem(s)")
    assert len(env["result"]["records"]) == board.app.log.seq and "corrupt data" in env["result"]["problems"][0]
    assert "pumpctl: error" not in err


def test_logs_renders_its_result_with_no_board(capsys):
    # the render step alone: the result `logs` returns (the --json result) becomes the text and the lines
    from pumpctl import logs as logsmod
    from pumpctl.commands import logs

    raw = [eventlog.encode(i, 10 * i, 0, eventlog.BOOT, eventlog.pack_data(eventlog.BOOT, (0, i))) for i in (1, 2)]
    r = {"records": logsmod.decode(b"".join(raw)).records, "pages": 1, "bytes": 1234, "problems": ["damaged #3"]}
    s = cli.State(argparse.Namespace(out=None, plot="a.png", format="csv"), cli.COMMANDS["logs"])
    s.notes["seconds"] = 0.25
    s.fail(PumpctlError("1 log problem(s): what could be read was kept"))
    logs.show_logs(r, s)
    out, err = capsys.readouterr()
    assert out == logsmod.export(r["records"], "csv") and out.startswith("seq,time,ticks_ms,event,details\n1,")
    assert err == ("read 2 records (1,234 bytes) in 0.25 s, 1 pages; plot a.png\n"
                   "pumpctl: log problem: damaged #3\n"
                   "pumpctl: error: 1 log problem(s): what could be read was kept\n")
    s = cli.State(argparse.Namespace(out="log.csv", plot=None, format="table"), cli.COMMANDS["logs"])
    s.notes["seconds"] = 1.5
    logs.show_logs({"records": [], "pages": 1, "bytes": 0, "problems": []}, s)
    assert capsys.readouterr() == ("", "read 0 records (0 bytes) in 1.50 s, 1 pages; wrote log.csv\n")


def test_a_refill_mismatch_warns_a_person_and_is_in_the_json_result(board, capsys):
    programmed(board, capsys)  # 20 mL in: a refill that removes nothing is off by 20 mL, each time
    args = ("refill", "--drug", "hydromorphone", "--conc-ug-per-ml", "5000", "--added-ml", "20", "--removed-ml", "0")
    rc, out, err = pc(capsys, *args)
    assert rc == 0 and err == ("warning: removed 0.0 uL but the pump expected 20.000 mL (off by 20.000 mL, "
                               "tolerance 1.000 mL): check for a pocket fill or a leak\n")
    assert out.startswith("refilled with hydromorphone")
    rc, out, err = pc(capsys, *args, "--json")  # README: with --json nothing but progress on stderr
    assert rc == 0 and err == "" and json.loads(out)["result"]["warning"] is True


def test_read_logs_reports_records_that_do_not_decode():
    class Pages:
        def request(self, op, args=None, timeout_s=None):
            good = eventlog.encode(1, 10, 0, eventlog.BOOT, eventlog.pack_data(eventlog.BOOT, (0, 1))).hex()
            bad = bytearray(eventlog.encode(2, 20, 0, eventlog.BOOT, eventlog.pack_data(eventlog.BOOT, (0, 2))))
            bad[-1] ^= 0xFF  # CRC broken on the way
            return {"records": [good, bytes(bad).hex(), "zz"], "next": 3, "last_seq": 3, "first_seq": 1,
                    "problems": []}

    got = session.read_logs(Pages())  # type: ignore[arg-type]
    assert [r["seq"] for r in got.records] == [1]
    assert any("not hex" in p for p in got.problems) and any("corrupt" in p or "torn" in p for p in got.problems)


def test_status_rows_of_a_board_without_therapy_fields():
    assert render.therapy_rows({"fw": "0.1.0"}) == []
    rows = dict(render.therapy_rows({"therapy": None, "alarms": [], "halt": [], "battery_mv": 4100}))
    assert rows["therapy"] == "not programmed" and rows["battery"] == "4100 mV" and rows["alarms"] == "none"
    rows = dict(render.therapy_rows({"battery": {"state": "LOW", "fault": False, "avg_mv": 3310}}))
    assert rows["battery"] == "LOW, 3310 mV"
    rows = dict(render.therapy_rows({"battery": {"state": "UNKNOWN", "fault": True, "avg_mv": 0,
                                                  "reading_mv": 0}}))
    assert rows["battery"] == "UNKNOWN: sensor fault (reads 0 mV)"  # was "OK, 0 mV, FAULT"
    rows = dict(render.therapy_rows({"delivered_today_nl": 1000, "delivered_total_nl": 5000,
                                      "unconfirmed_nl": {"boot": 695, "total": 2085}}))
    assert rows["booked at resets"] == "0.6 uL this boot, 2.0 uL in all, as delivered without confirmed pulses"
    rows = dict(render.therapy_rows({"reservoir_nl": 19_999_999, "reservoir_drug": "baclofen",
                                      "reservoir_conc_ug_per_ml": 500}))
    assert rows["reservoir"] == "19.999 mL of baclofen 500 ug/mL"  # floored: 20.000 would overstate it
    assert "booked at resets" not in dict(render.therapy_rows({"unconfirmed_nl": {"boot": 0, "total": 0}}))
    assert "rotor" not in dict(render.therapy_rows({"line": {"rotor": None}}))  # a board without the index


def test_status_says_when_the_rotor_phase_is_not_known():
    rows = dict(render.therapy_rows({"line": {"rotor": {"known": False, "edges": 0}}}))
    assert "NOT KNOWN" in rows["rotor"] and "--prime" in rows["rotor"]
    rows = dict(render.therapy_rows({"line": {"rotor": {"known": True, "edges": 7, "gaps_known": 3,
                                                         "owed_pl": -230500}}}))
    assert rows["rotor"] == "phase known, 7 index edges, 3 magnet gaps learnt, -230.5 nL re-priced still to settle"


def test_page_limit_matches_firmware():
    from itpump import ops

    assert session.MAX_LOG_RECORDS == ops.MAX_LOG_RECORDS


def test_read_logs_halves_the_page_when_the_board_runs_short_of_heap():
    from pumpctl.client import DeviceError

    recs = [eventlog.encode(i, 10 * i, 0, eventlog.DELIVERY, eventlog.pack_data(eventlog.DELIVERY, (i, 4167))).hex()
            for i in range(1, 101)]
    asked = []

    class Board:
        def request(self, op, args=None, timeout_s=None):
            asked.append(args["max"])
            if args["max"] > 30:
                raise DeviceError("INTERNAL", "MemoryError in 'logs': memory allocation failed", "logs")
            s = args["since"]
            page = recs[s:s + args["max"]]
            return {"records": page, "next": s + len(page), "last_seq": 100, "first_seq": 1, "problems": []}

    got = session.read_logs(Board(), page=200)  # type: ignore[arg-type]
    assert [r["seq"] for r in got.records] == list(range(1, 101)) and got.problems == []
    assert asked[:4] == [200, 100, 50, 25] and got.page == 25 and got.memory_retries == 3
