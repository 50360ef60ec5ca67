"""While therapy runs the REPL is locked: Ctrl-C (and Ctrl-D) on the link is data, the pump keeps going.
At rest it is open, so mpremote can reach the board (the foundation tests cover that side)."""

import json
import subprocess
import time

from pumpctl.link import Link
from vbtools import install_keys, run

RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}


def request(link, line, req_id, timeout_s=5.0):
    link.write(line + b"\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = link.readline(max(0.0, deadline - time.monotonic()))
        if raw is None:
            break
        try:
            msg = json.loads(raw)
        except ValueError:
            raise AssertionError(f"not a JSON line: {raw[:200]!r}") from None
        if msg.get("id") == req_id and "ok" in msg:
            return msg
    raise AssertionError(f"no reply to {line[:60]!r}; pending {link.pending_text()[-80:]!r}")


def status(link, req_id=1):
    r = request(link, json.dumps({"id": req_id, "op": "status"}).encode(), req_id)
    assert r["ok"], r
    return r["result"]


def test_ctrl_c_during_therapy_does_not_stop_the_pump(flashed_board, tmp_path):
    port = flashed_board.port
    ks = install_keys(port, tmp_path)
    with Link(port) as link:
        link.discard_input()
        for i, (op, args) in enumerate((("refill", FILL), ("program", {"rx": RX})), start=10):
            r = request(link, ks.signed_line(i, op, args, "clinician"), i)
            assert r["ok"], r
        before = status(link, 20)  # no pause: the program locks the REPL at once
        assert before["running"] and before["keys"] == "ok"
        boot_count = before["boot_count"]
        # what mpremote does to take a board over: Ctrl-C twice, then raw REPL (Ctrl-A) and soft reset (Ctrl-D)
        link.write(b"\r\x03\x03\x01\x04\x03\n")
        ev = json.loads(link.readline(5.0) or b"null")  # the pump says why, where mpremote shows it
        assert ev and ev.get("event") == "repl_locked" and "pumpctl service" in ev["message"], ev
        after = status(link, 21)  # still the app answering, not a REPL
        assert after["running"] and after["boot_count"] == boot_count and after["reset_cause"] == before[
            "reset_cause"]
        assert after["uptime_ms"] > before["uptime_ms"]
        assert after["delivered_nl"] >= before["delivered_nl"]
    # and mpremote, which needs the REPL, cannot take the running pump over: it fails, the pump runs on
    try:
        r = run("mpremote", "connect", port, "resume", "exec", "print('took over')", timeout=10)
        assert r.returncode != 0 and "took over" not in r.stdout, r
        assert "pumpctl service" in r.stdout + r.stderr, r  # and its user is told why
    except subprocess.TimeoutExpired:
        pass  # mpremote waits for a raw REPL that never comes; killed
    with Link(port) as link:
        link.write(b"\n")  # ends whatever mpremote left half-written (answered as one bad line)
        time.sleep(0.3)
        link.discard_input()
        st = status(link, 22)
        assert st["running"] and st["boot_count"] == boot_count
