# The app's loop over fake boards (CPython and micropython): link, boot, delivery, ops. A restart's books:
# test_statedoc.py; the device id: test_identity.py.
import json

import pytest
import scratch

from fakes import TICKS_PERIOD, FakeBoard, FakePumpBoard, pump_ticks_locked
from itpump import VERSION, alarms, app, auth, eventlog, halts, pump

pytestmark = pytest.mark.micropython

KEYS = {"patient": bytes(range(32)), "clinician": bytes(range(40, 72)), "service": bytes(range(80, 112))}
# morphine at 10 mg/mL, 0.96 mL/day (40000 nL/h, near the basal maximum): 33 steps of 20 nL a minute
RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}
RX_PB = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
         "dose_ng_per_day": 1000000,
         "patient_bolus": {"dose_ng": 50000, "duration_min": 1, "lockout_min": 60, "max_per_day": 4}}
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}


class Rig:
    """An app on a fake board in a scratch directory, with a signer for changes."""

    def __init__(self, board=None, keys=True, d=None, tag="app"):
        self.dir = d or scratch.make(tag)
        if keys and d is None:
            with open(self.dir + "/keys.json", "w") as f:
                f.write(json.dumps({"v": 1, "keys": {r: _hex(KEYS[r]) for r in KEYS}}))
        self.b = board if board is not None else FakePumpBoard()
        self.a = app.App(self.b, root=self.dir + "/")
        self.ctr = {"patient": 0, "clinician": 0, "service": 0}
        self.id = 0
        self.nt = None

    def line(self, op, args=None, role="clinician", ctr=None, key=None):
        self.id += 1
        if ctr is None:
            self.ctr[role] += 1
            ctr = self.ctr[role]
        body = json.dumps({"id": self.id, "op": op, "args": args or {}, "role": role, "ctr": ctr}).encode()
        return body + b"\t" + auth.hmac_hex(key or KEYS[role], body).encode() + b"\n"

    def send(self, raw):
        self.b.serial.feed(raw)
        self.a.poll_link()
        out = [json.loads(x) for x in self.b.serial.lines()]
        return [m for m in out if "event" not in m][-1]

    def change(self, op, args=None, role="clinician"):
        return self.send(self.line(op, args, role))

    def ok(self, op, args=None, role="clinician"):
        r = self.change(op, args, role)
        assert r["ok"], r
        return r["result"]

    def read(self, op, args=None):
        self.id += 1
        r = self.send(json.dumps({"id": self.id, "op": op, "args": args or {}}).encode() + b"\n")
        assert r["ok"], r
        return r["result"]

    def run_ms(self, ms):
        """Run the loop (link + ticks) for ms of fake time."""
        c = self.b.clock
        if self.nt is None:
            self.nt = c.ticks_add(c.ticks_ms(), pump.TICK_MS)
        end = c.ticks_add(c.ticks_ms(), ms)
        while c.ticks_diff(end, c.ticks_ms()) > 0:
            self.nt = self.a.step(self.nt)

    def events(self):
        recs, _ = self.a.log.read(0, 1000)
        return [(r[3], r[4]) for r in recs]

    def codes(self):
        return [c for c, _ in self.events()]

    def close(self):
        if self.a.log is not None:
            self.a.log.close()
        scratch.clean(self.dir)


def _hex(b):
    return "".join("%02x" % x for x in b)


def replies(board):
    return [json.loads(line) for line in board.serial.lines()]


def make():
    b = FakeBoard(cause="WDT")
    r = Rig(b)
    return b, r.a, r


def test_boot_event_names_firmware_board_reset_cause_and_device():
    b, a, r = make()
    a.boot()
    evs = replies(b)
    ev = [e for e in evs if e.get("event") == "boot"][0]
    assert ev["fw"] == VERSION and ev["board"] == "fake" and ev["reset_cause"] == "WDT"
    assert ev["keys"] == "ok" and ev["device_id"].startswith("fake-")
    assert (eventlog.BOOT, bytes([1]) + b"\x01\x00\x00\x00") in r.events()  # WDT, boot 1
    r.close()


def test_every_reset_cause_is_logged_by_name():
    # the bridge's CRASH (the interpreter died) was logged as 255, a value no table names
    for cause, want in (("CRASH", "CRASH"), ("PWRON", "PWRON"), ("BROWNOUT", "UNKNOWN")):
        r = Rig(FakeBoard(cause=cause))
        r.a.boot()
        boot = [eventlog.fields(c, d) for c, d in r.events() if c == eventlog.BOOT][-1]
        assert eventlog.RESET_CAUSES[boot["reset_cause"]] == want, (cause, boot)
        r.close()
    assert "CRASH" in eventlog.RESET_CAUSES and eventlog.RESET_CAUSES[-1] == "UNKNOWN"


def test_status_and_ping_over_the_link():
    b, a, r = make()
    b.serial.feed(b'{"id":1,"op":"ping"}\n{"id":2,"op":"status"}\n')
    a.poll_link()
    rs = [m for m in replies(b) if "id" in m]
    assert rs[0] == {"id": 1, "ok": True, "result": {"pong": True}}
    st = rs[1]["result"]
    assert rs[1]["id"] == 2 and st["fw"] == VERSION and st["board"] == "fake"
    assert st["reset_cause"] == "WDT" and st["mem_free"] > 0 and "uptime_ms" in st
    assert st["motor"] is False and st["running"] is False and st["alarms"] == ["WATCHDOG_RESET"]
    r.close()


def test_a_partial_line_is_dropped_after_2_s_of_silence():
    """Issue 13: a killed tool's partial line was glued to the next request (answered with id null)."""
    b, a, r = make()
    b.serial.feed(b'{"id":1,"op":"sta')
    a.poll_link()
    b.clock.advance(1999)
    b.serial.feed(b'tus"}\n')  # within 2 s: the same line, completed
    a.poll_link()
    assert [m["id"] for m in replies(b) if "id" in m] == [1]
    b.serial.feed(b'{"id":2,"op":"sta')
    a.poll_link()
    b.clock.advance(2000)
    b.serial.feed(b'{"id":3,"op":"ping"}\n')
    a.poll_link()
    assert [m for m in replies(b) if "id" in m] == [{"id": 3, "ok": True, "result": {"pong": True}}]
    r.close()


def test_a_flood_of_requests_waits_for_the_tick():
    """At most 4 requests per pass of the loop: a pile of status requests cannot starve the tick."""
    b, a, r = make()
    b.serial.feed(b'{"id":1,"op":"ping"}\n' * 10)
    a.poll_link()
    assert len([m for m in replies(b) if "id" in m]) == 4
    a.poll_link()
    a.poll_link()
    assert len([m for m in replies(b) if "id" in m]) == 6


def test_ctrl_c_while_therapy_runs_is_told_why_the_repl_stays_locked():
    b, a, r = make()
    replies(b)  # the watchdog-reset alarm of make()'s board
    b.serial.feed(b"\x01")
    a.poll_link()
    assert replies(b) == []  # at rest the REPL is not locked: nothing to say (Ctrl-C interrupts)
    a.link.locked = True
    b.set_repl_lock(True)
    b.serial.feed(b"\r\x03\x03\x01")
    a.poll_link()
    ev = [m for m in replies(b) if m.get("event") == "repl_locked"]
    assert len(ev) == 1 and "pumpctl service" in ev[0]["message"]  # once a second at most
    b.clock.advance(1000)
    b.serial.feed(b"\x03")
    a.poll_link()
    assert [m.get("event") for m in replies(b)] == ["repl_locked"]
    r.close()


def test_bad_input_gets_errors_and_the_loop_keeps_serving():
    b, a, r = make()
    b.serial.feed(b"{oops\n" + b"x" * 5000 + b"\n" + b'{"id":5,"op":"warp"}\n\r\n' + b'{"id":6,"op":"ping"}\n')
    a.poll_link()
    rs = [m for m in replies(b) if "event" not in m]
    assert [m["ok"] for m in rs] == [False, False, False, True]
    assert rs[0]["error"]["code"] == "JSON"
    assert rs[1]["error"]["code"] == "FRAME" and rs[1]["id"] is None
    assert rs[2]["error"]["code"] == "UNKNOWN_OP" and rs[2]["id"] == 5
    assert rs[3]["id"] == 6
    r.close()


def test_uptime_counts_across_the_tick_wrap():
    b, a, r = make()
    start = b.clock.ticks_ms()
    r.run_ms(60000)  # the fake clock wraps 1 s in
    assert b.clock.ticks_ms() < start  # it wrapped
    st = r.read("status")
    assert 59000 <= st["uptime_ms"] <= 61000, st["uptime_ms"]
    assert st["ticks"] >= 590
    r.close()


def test_ticks_do_not_burst_after_a_stall():
    b, a, r = make()
    nt = b.clock.ticks_add(b.clock.ticks_ms(), pump.TICK_MS)
    b.clock.advance(10000)  # the loop was stalled 10 s
    nt = a.step(nt)
    assert a.ticks == 1
    assert 0 < b.clock.ticks_diff(nt, b.clock.ticks_ms()) <= pump.TICK_MS
    r.close()


def test_ctrl_c_interrupts_main_unless_locked():
    b = FakeBoard()
    d = scratch.make("main")
    b.serial.feed(b"\x03")
    app.main(b, root=d + "/")  # returns: KeyboardInterrupt leaves for the REPL
    scratch.clean(d)
    b2 = FakeBoard()
    b2.set_repl_lock(True)
    b2.serial.feed(b"\x03")
    r2 = Rig(b2)
    r2.a.poll_link()  # plain data while locked: no exception
    assert TICKS_PERIOD == 1 << 30
    r2.close()


def test_leaving_for_the_repl_disables_the_watchdog_and_stops_the_motor():
    r = programmed()
    r.run_ms(2000)
    r.b.set_repl_lock(False)  # e.g. after the service op
    r.b.serial.feed(b"\x03")
    r.a.log.close()
    app.main(r.b, root=r.dir + "/")
    assert r.b.wdt.timeout_ms and r.b.wdt.disabled and not r.b.motor.enabled
    r.close()


def test_fault_injection_is_refused_by_name_on_a_real_board():
    b, a, r = make()
    b.serial.feed(b'{"id":1,"op":"sim.hang"}\n{"id":2,"op":"sim.bogus"}\n')
    a.poll_link()
    rs = [m for m in replies(b) if "id" in m]
    assert rs[0]["error"]["code"] == "SIM_ONLY" and "fake" in rs[0]["error"]["message"]
    assert rs[1]["error"]["code"] == "UNKNOWN_OP"
    r.close()


def test_watchdog_started_within_rp2_limit_and_fed_by_the_tick():
    r = Rig()
    b, a = r.b, r.a
    b.serial.feed(b"\x03")  # run() starts the WDT, boots, then Ctrl-C ends it
    try:
        a.run()
    except KeyboardInterrupt:
        pass
    assert 0 < b.wdt.timeout_ms <= 8388
    feeds = b.wdt.feeds
    r.run_ms(2000)
    assert b.wdt.feeds >= feeds + 19
    r.close()


def test_board_ops_report_value_errors_as_bad_arguments():
    b = FakeBoard()

    def op_x(args):
        raise ValueError("'s' must be a number")

    b.sim_ops = lambda: {"sim.x": op_x}
    r = Rig(b)
    b.serial.feed(b'{"id":3,"op":"sim.x","args":{"s":"no"}}\n')
    r.a.poll_link()
    m = [x for x in replies(b) if "id" in x][0]
    assert m["error"]["code"] == "ARGS" and "'s' must be" in m["error"]["message"]
    r.close()


# -- keys and authentication -----------------------------------------------------------------------
def test_without_a_key_file_every_change_is_refused_and_logged():
    r = Rig(keys=False)
    m = r.change("program", {"rx": RX})
    assert m["error"]["code"] == "AUTH_NOKEYS"
    assert r.a.pump.therapy is None and r.read("status")["keys"] == "none"
    assert eventlog.AUTH_FAILURE in r.codes()
    r.close()


def test_forged_replayed_and_wrong_role_changes_are_refused_logged_and_change_nothing():
    r = Rig()
    r.ok("refill", FILL)
    bad = r.line("program", {"rx": RX}, key=bytes(range(100, 132)))  # forged: another key
    assert r.send(bad)["error"]["code"] == "AUTH_MAC"
    good = r.line("program", {"rx": RX})
    assert r.send(good)["ok"]
    rx_id = r.a.doc.rx_id
    # the same bytes again: not applied twice, and not answered as a fresh success either
    again = r.send(good)
    assert not again["ok"] and again["error"]["code"] == "DUPLICATE" and again["error"]["outcome"] == "ok"
    assert r.a.doc.rx_id == rx_id
    # a new frame with an old counter: a replay
    m = r.send(r.line("program", {"rx": RX}, ctr=1))
    assert m["error"]["code"] == "AUTH_REPLAY" and r.a.doc.rx_id == rx_id
    m = r.change("program", {"rx": RX}, role="patient")
    assert m["error"]["code"] == "AUTH_FORBIDDEN" and r.a.doc.rx_id == rx_id
    fails = [d for c, d in r.events() if c == eventlog.AUTH_FAILURE]
    # (role, reason): clinician bad_mac, clinician duplicate, clinician replay; the patient's forbidden
    # op came within 10 s of the replay, uncounted refusals are logged at most once per 10 s
    assert fails == [bytes([1, 0]), bytes([1, 4]), bytes([1, 1])]
    r.close()


def test_a_refused_change_names_why_changes_nothing_and_is_logged():
    r = Rig()
    r.ok("refill", FILL)
    bad = dict(RX)
    bad["dose_ng_per_day"] = 99000000
    m = r.change("program", {"rx": bad})
    assert m["error"]["code"] == "LIMIT" and "dose_ng_per_day" in m["error"]["message"]
    assert r.a.pump.therapy is None
    other = dict(RX)
    other["conc_ug_per_ml"] = 20000
    m = r.change("program", {"rx": other})
    assert m["error"]["code"] == "MISMATCH" and "reservoir holds morphine at 10000" in m["error"]["message"]
    refusals = [d for c, d in r.events() if c == eventlog.CHANGE_REFUSED]
    assert refusals == [b"program:LIMIT", b"program:MISMATCH"]
    r.close()


# -- delivery ---------------------------------------------------------------------------------------
def programmed(rx=RX, board=None):
    r = Rig(board)
    r.a.boot()
    r.ok("refill", FILL)
    r.ok("program", {"rx": rx})
    return r


def test_delivers_the_prescribed_volume_from_confirmed_steps():
    r = programmed()
    m = r.b.motor
    r.run_ms(600000)  # 10 min at 40000 nL/h = 6666 nL
    st = r.read("status")
    assert st["running"] and m.enabled and st["rate_nl_per_h"] == 40000
    truth_nl = m.emitted * 20
    assert 6666 - 3 * 20 <= truth_nl <= 6667, truth_nl  # behind by the steps not yet due/confirmed
    assert truth_nl <= st["delivered_nl"] <= truth_nl + 1 + 20  # confirmed (+ one move not yet confirmed)
    assert st["reservoir_nl"] == 20000000 - st["delivered_nl"] or st["reservoir_nl"] == 20000000 - st[
        "delivered_nl"] - 1
    assert st["delivered_today_nl"] == st["delivered_nl"] == st["delivered_total_nl"]
    assert st["guard"]["violation"] == 0 and st["dosing"]["withheld_steps"] == 0
    r.close()


def test_motor_enabled_only_while_a_prescription_runs():
    r = Rig()
    r.a.boot()
    r.run_ms(1000)
    assert not r.b.motor.enabled and r.b.motor.enables == 0
    r.ok("refill", FILL)
    assert not r.b.repl_locked  # at rest the REPL is open (mpremote, flashing)
    r.ok("program", {"rx": RX})
    assert r.b.repl_locked  # at once, before any tick: no window for a Ctrl-C under a new program
    r.run_ms(1000)
    assert r.b.motor.enabled and r.b.repl_locked  # the REPL is locked while therapy runs
    r.ok("suspend", {"on": True})
    r.run_ms(200)
    assert not r.b.motor.enabled and not r.b.repl_locked
    r.ok("suspend", {"on": False})
    assert r.b.repl_locked
    r.b.motor.extra_per_move = 500  # a runaway driver: the guard halts delivery with an alarm
    r.run_ms(3000)
    assert not r.b.motor.enabled and r.a.pump.halt
    assert r.b.repl_locked  # halted, alarm sounding: still locked (leaving would silence it unseen)
    r.close()


def test_steady_state_tick_allocates_nothing():
    r = programmed()
    r.run_ms(5000)  # past the first moves and checkpoint
    p = r.a.pump
    c = r.b.clock
    moves = r.b.motor.moves
    pump_ticks_locked(p, c, 300)
    assert r.b.motor.moves >= moves + 10 and p.running()  # a step every ~1.8 s
    r.close()


def test_an_exception_in_the_tick_stops_the_motor_raises_internal_and_says_so():
    r = programmed()
    r.run_ms(3000)

    def broken(*a):
        raise RuntimeError("boom")

    r.a.pump.dosing.tick = broken
    r.run_ms(300)
    assert not r.b.motor.enabled and r.a.pump.halt & halts.H_INTERNAL
    assert r.a.alarms.is_active(alarms.INTERNAL)
    lines = [json.loads(x) for x in r.b.serial.lines()]
    assert {"event": "internal", "error": "RuntimeError: boom"} in lines
    assert any(x.get("event") == "alarm" and x["code"] == "INTERNAL" for x in lines)
    assert (eventlog.ALARM_RAISED, bytes([alarms.INTERNAL])) in r.events()
    del r.a.pump.dosing.tick
    r.ok("ack", {"code": "INTERNAL"})
    r.run_ms(300)
    assert r.b.motor.enabled
    r.close()


def test_reservoir_empty_stops_the_motor_with_an_alarm_until_a_refill():
    r = Rig()
    r.a.boot()
    r.ok("refill", {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 505000, "removed_nl": 0})
    r.ok("program", {"rx": RX})
    r.run_ms(600000)  # 6666 nL: below the 500000 nL stop after ~5000 nL
    st = r.read("status")
    assert not st["running"] and "reservoir_empty" in st["halt"] and "RESERVOIR_EMPTY" in st["alarms"]
    assert not r.b.motor.enabled and r.b.motor.emitted * 20 <= 5001
    m = r.change("bolus", {"kind": "clinician", "dose_ng": 10000, "duration_min": 1})
    assert m["error"]["code"] == "HALTED"
    r.ok("refill", FILL)
    r.ok("ack", {"code": "RESERVOIR_EMPTY"})
    r.run_ms(10000)
    assert r.read("status")["running"] and r.b.motor.enabled
    codes = r.codes()
    assert eventlog.REFILL in codes and eventlog.ALARM_RAISED in codes
    r.close()


def test_a_runaway_driver_trips_the_dose_guard():
    r = programmed()
    r.b.motor.extra_per_move = 500  # confirms far more than it was asked
    r.run_ms(3000)
    st = r.read("status")
    assert not r.b.motor.enabled and "DOSE_GUARD" in st["alarms"] and "dose_guard" in st["halt"]
    assert st["delivered_nl"] >= 500 * 20  # what it confirmed counts: never under-count
    r.b.motor.extra_per_move = 0
    r.ok("ack", {"code": "DOSE_GUARD"})
    r.run_ms(1000)
    assert r.b.motor.enabled
    assert "DOSE_GUARD" not in r.read("status")["alarms"]  # an event alarm ends with its acknowledgement
    r.close()


def test_a_second_stall_after_ack_raises_and_logs_again():
    # STALL has no condition the firmware measures once the motor is off: the ack ends it, so the
    # next stall is a new alarm (sound, event, record), not silently folded into the old one
    r = programmed()
    r.run_ms(3000)
    for n in (1, 2):
        r.b.motor.diag = True
        r.run_ms(300)
        assert not r.b.motor.enabled and "STALL" in r.read("status")["alarms"]
        r.b.motor.diag = False
        r.ok("ack", {"code": "STALL"})
        r.run_ms(1000)
        assert r.b.motor.enabled and "STALL" not in r.read("status")["alarms"]
        raised = [d for c, d in r.events() if c == eventlog.ALARM_RAISED and d == bytes([alarms.STALL])]
        assert len(raised) == n, (n, raised)
    r.close()


def test_patient_bolus_from_the_link_and_the_button_with_lockout():
    r = programmed(RX_PB)
    res = r.ok("patient_bolus", role="patient")
    assert res["volume_nl"] == 5000 and res["source"] == "link"
    r.run_ms(120000)  # the 1 min bolus runs out
    assert r.a.pump.therapy.bolus_kind is None
    r.b.button.press()
    r.run_ms(200)
    refused = [d for c, d in r.events() if c == eventlog.BOLUS_REFUSED]
    assert len(refused) == 1 and refused[0][4] == 2  # lockout
    m = r.change("patient_bolus", role="patient")
    assert m["error"]["code"] == "LOCKOUT" and "s left" in m["error"]["message"]
    r.run_ms(3600000)
    r.b.button.press()
    r.run_ms(200)
    assert r.a.pump.therapy.bolus_kind == "patient"
    given = [c for c in r.codes() if c == eventlog.BOLUS_GIVEN]
    assert len(given) == 2
    r.close()


def test_time_set_moves_the_schedule_clock():
    r = programmed()
    # 2024-01-01 06:30 UTC, shown at UTC+1: 07:30 local
    res = r.ok("time_set", {"unix_s": 1704090600, "tz_min": 60})
    assert res["tod_ms"] == (7 * 60 + 30) * 60000
    st = r.read("status")
    assert st["time_source"] == "host" and st["wall_s"] == 1704090600 - eventlog.WALL_EPOCH_UNIX
    m = r.change("time_set", {"unix_s": 5})
    assert m["error"]["code"] == "ARGS"
    assert eventlog.TIME_SET in r.codes()
    r.close()


def test_flex_status_names_the_next_step():
    rx = {"drug": "baclofen", "conc_ug_per_ml": 2000, "catheter_volume_nl": 200000, "mode": "flex",
          "flex": [{"start_min": 0, "dose_ng_per_day": 500000}, {"start_min": 360, "dose_ng_per_day": 700000}]}
    r = Rig()
    r.a.boot()
    r.ok("refill", {"drug": "baclofen", "conc_ug_per_ml": 2000, "added_nl": 20000000, "removed_nl": 0})
    r.ok("program", {"rx": rx})
    st = r.read("status")
    assert st["next_step"] == {"at_min": 360, "in_min": 360, "rate_nl_per_h": 14583}
    assert st["rate_nl_per_h"] == 10417 and st["days_to_empty"] > 50
    r.close()


def test_calibration_changes_steps_and_is_logged():
    r = programmed()
    m = r.change("calibrate", {"measured_nl": 100000, "steps": 1000})  # 100 nL/step: 400 % off
    assert m["error"]["code"] == "LIMIT" and r.a.pump.dosing.pl_per_step == 20000
    res = r.ok("calibrate", {"measured_nl": 210000, "steps": 10000})
    assert res["pl_per_step"] == 21000 and r.a.pump.dosing.pl_per_step == 21000
    assert eventlog.CALIBRATION in r.codes()
    r.close()


def test_logs_are_paged_as_hex_records():
    r = programmed()
    for _ in range(5):
        r.change("program", {"rx": RX}, role="patient")  # refused: logged (one per 10 s)
        r.b.clock.advance(10000)
    seen = []
    since = 0
    while True:
        page = r.read("logs", {"since": since, "max": 3})
        if not page["records"]:
            break
        for h in page["records"]:
            raw = bytes(int(h[i:i + 2], 16) for i in range(0, len(h), 2))
            rec = eventlog.unpack(raw, 0)
            seen.append(rec[0])
        since = page["next"]
    assert seen == list(range(1, r.a.log.seq + 1)) and len(seen) >= 8
    r.close()


def test_a_board_without_a_motor_runs_the_link_only():
    r = Rig(FakeBoard())
    r.a.boot()
    r.ok("refill", FILL)
    r.ok("program", {"rx": RX})
    r.run_ms(2000)
    st = r.read("status")
    assert st["motor"] is False and st["delivered_nl"] == 0
    r.close()
