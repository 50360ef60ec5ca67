"""End to end: a clinician's session with pumpctl on a virtual board (provision, refill, program, run,
bolus, lockout, alarms, logs, a tampered keystore)."""

import csv
import io
import json
import os
import time
from pathlib import Path

import pytest

from pumpctl import prescription
from pumpctl.client import Client
from pumpctl.link import Link
from vbtools import VBoard, pumpctl_env, run

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RX = str(ROOT / "examples" / "hydromorphone_patient_bolus.toml")  # 0.5 mg/day at 5 mg/mL: 4167 nL/h


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = tmp_path_factory.mktemp("therapy")
    with pumpctl_env(d / "keys", VBoard(d / "vb")) as b:
        run("pumpctl", "flash", "--board", "sim", "--quiet", check=True)
        yield b


def pc(*args, ok=True):
    r = run("pumpctl", *args)
    assert "Traceback" not in r.stderr, r.stderr
    if ok:
        assert r.returncode == 0, f"pumpctl {args}: {r.stdout}\n{r.stderr}"
    else:
        assert r.returncode in (1, 2, 4), f"pumpctl {args} should fail: {r.stdout}\n{r.stderr}"
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("pumpctl: error: "), r.stderr
    return r


def status():
    return json.loads(pc("status", "--json").stdout)["result"]


def advance(port, s):
    with Link(port) as link:
        c = Client(link)
        c.request("sim.advance", {"s": s})
        deadline = time.monotonic() + 120
        while c.request("sim.clock")["fast_forward"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_clinician_session(board):
    # before provisioning: changes refused with the hint, nothing changes
    r = pc("refill", "--drug", "hydromorphone", "--conc-ug-per-ml", "5000", "--added-ml", "20",
           "--removed-ml", "0", ok=False)
    assert "provision" in r.stderr
    r = pc("provision")
    assert "keys ok" in r.stdout
    st = status()
    assert st["keys"] == "ok" and st["reservoir_nl"] == 0
    pc("provision", ok=False)  # keys exist: refused without --force

    pc("refill", "--drug", "hydromorphone", "--conc-ug-per-ml", "5000", "--added-ml", "20", "--removed-ml", "0")
    r = run("pumpctl", "program", RX)  # no --yes and no answer on stdin: nothing sent
    assert r.returncode == 1 and "not confirmed" in r.stderr and status()["therapy"] is None
    r = pc("program", RX, "--yes")
    assert "hydromorphone" in r.stdout and "500 ug/day" in r.stdout  # diff, then the summary
    r = pc("therapy", "--toml")  # the running prescription as a file: loads back to the same one
    assert 'dose = "500 ug/day"' in r.stdout and "ng" not in r.stdout.split("\n", 1)[1]
    assert prescription.loads(r.stdout) == prescription.load(RX)
    pc("time", "sync")
    assert status()["time_source"] == "host"

    st0 = status()
    advance(board.port, 3600)
    st = status()
    assert st["uptime_ms"] >= 3600_000, f"the board restarted during the hour ({st['reset_cause']}, {st['alarms']})"
    # the count, plus what a first index edge's re-pricing of the blind steps still owes the programme
    # (booked at the edge, settled slowly: it can be a few hundred nL of this hour's 4167)
    owed_nl = (st["line"]["rotor"]["owed_pl"] - st0["line"]["rotor"]["owed_pl"]) / 1000
    delivered = st["delivered_total_nl"] - st0["delivered_total_nl"] + owed_nl
    assert st["running"] and st["rate_nl_per_h"] == 4167
    assert 0.95 * 4167 <= delivered <= 1.05 * 4167, delivered
    human = pc("status").stdout
    assert "hydromorphone" in human and "days to empty" in human and "4.167 uL/h" in human

    # patient bolus, then a second one inside the lockout: a clear refusal
    r = pc("bolus", "--patient")
    assert "patient bolus started: 5.0 uL" in r.stdout
    r = pc("bolus", "--dose-ug", "2.5", "--minutes", "5", ok=False)  # the patient bolus runs
    assert "BUSY" in r.stderr and "patient bolus is running" in r.stderr
    advance(board.port, 900)  # the 10 min bolus is over; its 2 h lockout is not
    r = pc("bolus", "--patient", ok=False)
    assert "LOCKOUT" in r.stderr
    r = pc("bolus", "--dose-ug", "2.5", "--minutes", "5")
    assert "clinician bolus started: 0.5 uL" in r.stdout
    pc("bolus", "--dose-ug", "2.5", ok=False)  # no --minutes: refused on the host

    # a watchdog reset latches an alarm: shown, acknowledged
    with Link(board.port) as link:
        c = Client(link)
        link.write(b'{"id":900,"op":"sim.hang"}\n')
        assert c.wait_event("boot", timeout_s=15)["reset_cause"] == "WDT"
    # the reset booked at most 2 min of basal (and the unfinished clinician bolus) beyond the confirmed
    # pulses; status and the log say how much
    booked = status()["unconfirmed_nl"]
    assert 0 < booked["boot"] <= 4167 * 2 // 60 + 1 + 500 + 100 and booked["total"] >= booked["boot"], booked
    assert "booked at resets" in pc("status").stdout and "reserve_booked" in pc("logs").stdout
    r = pc("alarms")
    assert "WATCHDOG_RESET" in r.stdout
    pc("ack", "NO_SUCH_ALARM", ok=False)
    r = pc("ack", "WATCHDOG_RESET")
    assert "acknowledged: WATCHDOG_RESET" in r.stdout

    # a tampered keystore: refused with a clear message, nothing changes on the board
    ks = Path(os.environ["ITPUMP_KEYS_DIR"]) / f"{st['device_id']}.json"
    saved = ks.read_text()
    data = json.loads(saved)
    data["keys"]["clinician"] = "00" * 32
    ks.write_text(json.dumps(data))
    before = status()
    r = pc("refill", "--drug", "hydromorphone", "--conc-ug-per-ml", "5000", "--added-ml", "10",
           "--removed-ml", "0", ok=False)
    assert "refused the signature" in r.stderr and "not this board's" in r.stderr
    after = status()
    assert after["therapy"]["rx_id"] == before["therapy"]["rx_id"]
    assert after["reservoir_nl"] <= before["reservoir_nl"]  # no refill: only delivery moved it
    ks.write_text(saved)

    # the log over the link: everything above is in it
    out = Path(os.environ["ITPUMP_KEYS_DIR"]).parent / "log.csv"
    r = pc("logs", "--format", "csv", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    events = [x["event"] for x in rows]
    for ev in ("refill", "therapy_change", "bolus_given", "bolus_refused", "time_set", "auth_failure",
               "alarm_raised", "alarm_acked", "delivery"):
        assert ev in events, (ev, events)
    assert [int(x["seq"]) for x in rows] == sorted(int(x["seq"]) for x in rows)
    assert f"read {len(rows)} records" in r.stderr
    r = pc("logs", "--since", rows[-3]["seq"], "--format", "json")
    assert [x["seq"] for x in json.loads(r.stdout)] == [int(x["seq"]) for x in rows[-2:]]
    png, html = out.with_name("plot.png"), out.with_name("report.html")
    r = pc("logs", "--format", "csv", "--out", str(out), "--plot", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG" and f"plot {png}" in r.stderr
    r = pc("report", "--out", str(html))  # the one-page report from this pump's state and log
    text = html.read_text()
    for s in (st["device_id"], "hydromorphone", "5 mg/mL", "500 ug/day", "next refill", "<svg", "alarm"):
        assert s in text, s

    # keys are changed only at rest
    r = pc("provision", "--force", ok=False)
    assert "therapy is running" in r.stderr
    pc("suspend")
    assert status()["running"] is False
    pc("resume")
    assert status()["therapy"]["suspended"] is False
