"""The client after an interrupted tool (issue 13): it starts clean (a newline first), its request ids are
random, and an error without an id is understood instead of waited out."""

import json

import pytest
from test_client_signed import AppLink

from pumpctl import EXIT_REFUSED, EXIT_TIMEOUT
from pumpctl.client import Client, DeviceError, NoReplyError


class Link:
    """Replies scripted per request: reply(req) -> list of lines; the clock moves with each wait."""

    port = "fake"

    def __init__(self, reply, leftover=b""):
        self.t = 0.0
        self.reply = reply
        self.written = []
        self.out = []
        self.input = bytearray(leftover)  # what the board has not read yet: a dead tool's partial line

    def clock(self):
        return self.t

    def write(self, data):
        self.written.append(data)
        self.input += data
        while b"\n" in self.input:
            i = self.input.index(b"\n")
            line, self.input = bytes(self.input[:i]), self.input[i + 1:]
            if not line.strip():
                continue  # the firmware ignores blank lines
            try:
                req = json.loads(line)
            except ValueError:  # a glued line: the firmware cannot find its id
                self.out.append(json.dumps({"id": None, "ok": False,
                                            "error": {"code": "JSON", "message": "not valid JSON"}}).encode())
                continue
            self.out += self.reply(req)

    def readline(self, timeout_s):
        if self.out:
            return self.out.pop(0)
        self.t += timeout_s
        return None

    def pending_text(self):
        return b""


def ok(req):
    return [json.dumps({"id": req["id"], "ok": True, "result": {"pong": True}}).encode()]


def test_a_leftover_partial_line_costs_nothing():
    """A killed pumpctl left '{"id":3,"op":"sta' in the board's input: the first request still works."""
    lk = Link(ok, leftover=b'{"id":3,"op":"sta')
    c = Client(lk, clock=lk.clock)
    assert c.request("ping") == {"pong": True}
    assert lk.written[0].startswith(b"\n{")  # the newline ends the leftover first
    assert lk.t < 1.0  # no timeout waited out
    assert c.request("ping") == {"pong": True} and lk.written[1].startswith(b"{")  # only the first


def test_an_id_less_error_that_is_ours_is_reported_at_once():
    lk = Link(lambda req: [json.dumps({"id": None, "ok": False,
                                       "error": {"code": "FRAME", "message": "line longer than 2048 bytes"}}).encode()])
    c = Client(lk, timeout_s=30, clock=lk.clock)
    with pytest.raises(DeviceError, match="ping: FRAME: line longer") as e:
        c.request("ping")
    assert e.value.exit_code == EXIT_REFUSED
    assert lk.t <= 2.0  # the grace for our own reply, not the 30 s timeout


def test_no_reply_is_a_timeout_error():
    lk = Link(lambda req: [])
    with pytest.raises(NoReplyError, match="no reply to 'ping' in 3.0 s") as e:
        Client(lk, clock=lk.clock).request("ping")
    assert e.value.exit_code == EXIT_TIMEOUT


def test_request_ids_start_at_random():
    firsts = set()
    for _ in range(20):
        lk = Link(ok)
        Client(lk, clock=lk.clock).request("ping")
        firsts.add(json.loads(lk.written[0])["id"])
    assert len(firsts) > 15 and all(0 < i <= 0x3FFFFFFF for i in firsts)


def test_a_late_reply_to_an_earlier_tool_is_not_taken_for_ours():
    lk = Link(ok)
    lk.out.append(json.dumps({"id": 1, "ok": False, "error": {"code": "ARGS", "message": "old"}}).encode())
    assert Client(lk, clock=lk.clock).request("ping") == {"pong": True}


def test_a_resent_change_says_duplicate_on_the_real_firmware(tmp_path):
    """The exact bytes of an applied change sent again: DUPLICATE with its outcome, never ok."""
    from pumpctl import keys

    ks = keys.provision("fake-0001", tmp_path)
    link = AppLink(ks)
    try:
        c = Client(link)
        c.change("refill", {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}, ks)
        line = link.changes()[-1]
        link.write(line)  # the same bytes again (a host's blind retry)
        r = json.loads(link.readline(1))
        assert r["ok"] is False and r["error"]["code"] == "DUPLICATE" and r["error"]["outcome"] == "ok"
        assert r["id"] == json.loads(line.split(b"\t")[0])["id"]
    finally:
        link.close()
