"""The web programmer's server (Starlette TestClient) against a stand-in for the link owner: access by
one-time token only, changes only as POSTs with the session's CSRF token from this server's Origin, the
two-step prescription confirm, clinical units on the pages, the patient view's limits."""

import re

import pytest

pytest.importorskip("httpx2", reason="httpx2 (dev dependency) missing: the web server unit tests need it")
from starlette.testclient import TestClient  # noqa: E402

from pumpctl import (
    PumpctlError,  # noqa: E402
    prescription,  # noqa: E402
)
from pumpctl.web.app import create_app  # noqa: E402

HOST = "127.0.0.1:8765"
ORIGIN = {"Origin": f"http://{HOST}"}
RX = prescription.load(prescription.REPO_ROOT / "examples" / "hydromorphone_patient_bolus.toml")
STATUS = {"device_id": "e6614c311b7d", "board": "sim", "fw": "0.1.0", "running": True, "rate_nl_per_h": 4167,
          "next_step": None, "delivered_today_nl": 50_000, "delivered_total_nl": 1_250_000,
          "reservoir_nl": 18_750_000, "reservoir_drug": "hydromorphone", "reservoir_conc_ug_per_ml": 5000,
          "alarms": ["OCCLUSION"], "alarm_list": [{"code": "OCCLUSION", "priority": "HIGH", "present": True,
                                                   "acked": False}],
          "battery": {"state": "OK", "avg_mv": 3900, "fault": False}, "pressure_pa": 2500, "keys": "ok",
          "log_seq": 3, "therapy": {"drug": "hydromorphone", "conc_ug_per_ml": 5000, "mode": "continuous",
                                    "rx_id": 1, "day_volume_nl": 120_000, "day_dose_ng": 600_000,
                                    "suspended": False}}


class FakeService:
    def __init__(self):
        self.status = dict(STATUS)
        self.therapy = {"rx": RX, "rx_id": 1}
        self.records, self.samples, self.log_problems, self.error, self.updated = [], [], [], None, 0.0
        self.changes = []
        self.refuse = None

    def change(self, op, args=None, role=None):
        if self.refuse:
            raise PumpctlError(self.refuse)
        self.changes.append((op, args, role))
        if op == "program":
            self.therapy = {"rx": args["rx"], "rx_id": self.therapy["rx_id"] + 1}
        return {"acked": [args["code"]]} if op == "ack" else {"kind": "clinician", "volume_nl": 10000,
                                                             "rate_nl_per_h": 60000}

    def subscribe(self, fn):
        return lambda: None


@pytest.fixture
def web(tmp_path, monkeypatch):
    monkeypatch.setenv("ITPUMP_DATA_DIR", str(tmp_path))
    svc = FakeService()
    app = create_app(svc, {"C-TOKEN": "clinician", "P-TOKEN": "patient"}, {HOST})
    c = TestClient(app, base_url=f"http://{HOST}")
    return c, svc


def login(c, token="C-TOKEN", path="/"):
    r = c.get(f"{path}?token={token}", follow_redirects=False)
    assert r.status_code == 303 and "itpump_session" in r.cookies
    assert "samesite=strict" in r.headers["set-cookie"].lower() and "httponly" in r.headers["set-cookie"].lower()
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/program").text).group(1) if token == "C-TOKEN" else None


def test_no_token_no_page(web):
    c, svc = web
    for path in ("/", "/program", "/log", "/charts", "/events", "/api/status", "/patient"):
        r = c.get(path)
        assert r.status_code == 403 and "no token, no page" in r.text, path
    assert c.get("/?token=guess").status_code == 403
    assert c.post("/ack", data={"code": "all"}, headers=ORIGIN).status_code == 403
    assert svc.changes == []


def test_the_token_works_once_and_then_the_cookie(web):
    c, svc = web
    login(c)
    assert c.get("/").status_code == 200
    other = TestClient(c.app, base_url=f"http://{HOST}")
    assert other.get("/?token=C-TOKEN").status_code == 403  # used already


def test_wrong_host_refused(web):
    c, svc = web
    login(c)
    assert c.get("/", headers={"Host": "evil.example:8765"}).status_code == 403  # DNS rebinding


def test_dashboard_in_clinical_units(web):
    c, svc = web
    login(c)
    t = c.get("/").text
    for s in ("running", "hydromorphone 5 mg/mL", "4.167 uL/h", "50.0 uL", "250 ug", "18.750 mL", "refill by",
              "low-reservoir alarm (2 mL) on", "OCCLUSION", "Acknowledge", "3.90 V"):
        assert s in t, s
    shown = re.sub(r'name="csrf" value="[^"]*"', "", t)  # the random token may spell "nL" by chance
    assert "nL" not in shown and "_ng" not in shown


def test_changes_need_csrf_and_origin(web):
    c, svc = web
    csrf = login(c)
    assert c.post("/ack", data={"code": "OCCLUSION"}, headers=ORIGIN).status_code == 403  # no CSRF token
    assert c.post("/ack", data={"code": "OCCLUSION", "csrf": csrf}).status_code == 403  # no Origin
    r = c.post("/ack", data={"code": "OCCLUSION", "csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and svc.changes == []
    r = c.post("/ack", data={"code": "OCCLUSION", "csrf": csrf}, headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and svc.changes == [("ack", {"code": "OCCLUSION"}, None)]
    assert c.get("/ack").status_code == 405  # never a GET


def test_prescription_two_steps(web):
    c, svc = web
    csrf = login(c)
    text = prescription.to_toml(RX).replace('dose = "500 ug/day"', 'dose = "600 ug/day"')
    r = c.post("/program/check", data={"rx": text, "csrf": csrf}, headers=ORIGIN)
    assert r.status_code == 200 and svc.changes == []  # step 1 sends nothing
    assert "500 ug/day" in r.text and "600 ug/day" in r.text and 'class="changed"' in r.text
    digest = re.search(r'name="digest" value="([^"]+)"', r.text).group(1)
    r = c.post("/program/send", data={"csrf": csrf, "digest": "0" * 64}, headers=ORIGIN)
    assert "changed after it was checked" in r.text and svc.changes == []
    r = c.post("/program/send", data={"csrf": csrf, "digest": digest}, headers=ORIGIN)
    assert "prescription #2 programmed" in r.text
    assert svc.changes[0][0] == "program" and svc.changes[0][1]["rx"]["dose_ng_per_day"] == 600_000
    from pumpctl import history

    assert [e["source"] for e in history.entries()] == ["pumpctl web"]


def test_a_refused_prescription_names_what_was_typed(web):
    c, svc = web
    csrf = login(c)
    text = prescription.to_toml(RX).replace('dose = "500 ug/day"', 'dose = "11 mg/day"')
    r = c.post("/program/check", data={"rx": text, "csrf": csrf}, headers=ORIGIN)
    assert 'dose = &#34;11 mg/day&#34;: above the maximum for hydromorphone 10 mg/day' in r.text
    assert "digest" not in r.text and svc.changes == []


def test_bolus_in_clinical_units(web):
    c, svc = web
    csrf = login(c)
    d = {"csrf": csrf, "kind": "clinician", "dose": "50 ug", "over": "10 min"}
    r = c.post("/bolus", data=d, headers=ORIGIN)
    assert "tick the confirmation" in r.text and svc.changes == []
    r = c.post("/bolus", data=dict(d, dose="0.0001 ng", confirm="yes"), headers=ORIGIN)
    assert "not a whole ng" in r.text and svc.changes == []
    r = c.post("/bolus", data=dict(d, confirm="yes"), headers=ORIGIN)
    assert svc.changes == [("bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_min": 10}, None)]
    assert "bolus started: 10 uL at 60 uL/h" in r.text


def test_patient_view_offers_only_status_and_the_patient_bolus(web):
    c, svc = web
    r = c.get("/patient?token=P-TOKEN")
    assert r.status_code == 200 and "Give my bolus" in r.text and "Acknowledge" not in r.text
    assert "Prescription" not in r.text
    for path in ("/", "/program", "/log"):
        r = c.get(path)
        assert r.status_code in (200, 403) and "Give my bolus" in r.text or r.status_code == 403, path
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/patient").text).group(1)
    assert c.post("/ack", data={"code": "all", "csrf": csrf}, headers=ORIGIN).status_code == 403
    r = c.post("/patient/bolus", data={"csrf": csrf}, headers=ORIGIN)
    assert r.status_code == 200 and svc.changes == [("patient_bolus", None, "patient")]


def test_log_and_charts_pages(web):
    c, svc = web
    login(c)
    svc.records = [
        {"seq": 1, "ticks_ms": 0, "wall_s": 1000, "event": "refill", "fields": {"volume_nl": 20_000_000,
                                                                                "expected_nl": 0}},
        {"seq": 2, "ticks_ms": 10, "wall_s": 1000, "event": "therapy_change", "fields": {"rate_nl_per_h": 4167,
                                                                                         "rx_id": 1}},
        {"seq": 3, "ticks_ms": 3_600_000, "wall_s": 4600, "event": "delivery",
         "fields": {"delivered_nl": 4100, "rate_nl_per_h": 4167}},
        {"seq": 4, "ticks_ms": 3_700_000, "wall_s": 4700, "event": "alarm_raised", "fields": {"alarm": "OCCLUSION"}},
    ]
    t = c.get("/log").text
    assert "OCCLUSION" in t and "refill" in t and "volume 20 mL" in t
    t = c.get("/log?event=refill").text
    assert "refill" in t and "OCCLUSION" not in t
    t = c.get("/log?alarms=1").text
    assert "OCCLUSION" in t and "<td>therapy_change</td>" not in t
    t = c.get("/charts").text
    assert t.count("<svg") == 4 and ">OCCLUSION<" in t and "refill 20 mL" in t and "rx #1 hydromorphone" in t


def test_busy_port_names_the_web_programmer(tmp_path, monkeypatch):
    import os

    from pumpctl import web
    from pumpctl.link import describe_open_error

    monkeypatch.setenv("ITPUMP_DATA_DIR", str(tmp_path))
    err = OSError("[Errno 11] Could not exclusively lock port /dev/pts/9: [Errno 11] Resource temporarily unavailable")
    assert describe_open_error("/dev/pts/9", err) == "port busy: /dev/pts/9 is open in another program"
    with web.owner_note("/dev/pts/9", "http://127.0.0.1:8765/"):
        text = describe_open_error("/dev/pts/9", err)
        assert text.startswith(f"port busy: pumpctl web (pid {os.getpid()}) owns the link to /dev/pts/9")
        assert "http://127.0.0.1:8765/" in text
        assert web.busy_text("/dev/pts/8") is None
    assert web.owner("/dev/pts/9") is None  # the note goes with it
    web._note_path("/dev/pts/9").write_text('{"pid": 999999999, "url": "x"}')
    assert web.owner("/dev/pts/9") is None  # a note left by a dead process says nothing


def test_http_port_in_use_is_one_clear_error_before_the_link_is_taken():
    import socket

    from pumpctl import web

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PumpctlError, match=rf"127.0.0.1:{port} is in use \(another pumpctl web\?\): choose "
                                               "another with --http-port N"):
            web.serve("/dev/no-such-port", http_port=port)  # the serial port is never opened
