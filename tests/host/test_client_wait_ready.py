"""Client.wait_ready against a fake slow-booting board on a virtual clock: one status request at a
time, so requests never pile up in the input of a board that is still booting."""

import json

import pytest

from pumpctl import PumpctlError
from pumpctl.client import Client


class SlowBoard:
    """A link to a board that boots boot_s after t=0 (its input queues meanwhile, like a USB CDC
    buffer), then answers one queued request every serve_s. readline() advances the test's clock."""

    port = "fake"

    def __init__(self, boot_s=6.7, serve_s=0.2, lose_before_boot=False, garbage=None):
        self.t = 0.0
        self.boot_s = boot_s
        self.serve_s = serve_s
        self.lose = lose_before_boot
        self.queue = []  # request ids waiting in the board's input
        self.out = []  # (time, line) the board sends
        self.sent_at = []
        self.max_queued = 0
        self.booted = False
        self.busy_until = boot_s
        self.garbage = garbage  # a partial line left in the input by an earlier tool

    def clock(self):
        return self.t

    def write(self, data):
        msg = json.loads(data)
        self.sent_at.append(self.t)
        if not (self.lose and not self.booted):
            self.queue.append(msg["id"])
        self.max_queued = max(self.max_queued, len(self.queue))

    def _run_until(self, t):
        if not self.booted and t >= self.boot_s:
            self.booted = True
            self.out.append((self.boot_s, b'{"event": "boot", "fw": "x"}'))
        while self.booted and self.queue and self.busy_until + self.serve_s <= t:
            self.busy_until += self.serve_s
            rid = self.queue.pop(0)
            if self.garbage:  # the first request is glued onto the partial line: id-less error
                self.garbage = None
                line = {"id": None, "ok": False, "error": {"code": "JSON", "message": "not valid JSON"}}
            else:
                line = {"id": rid, "ok": True, "result": {"fw": "x", "board": "sim"}}
            self.out.append((self.busy_until, json.dumps(line).encode()))
        if self.booted and not self.queue:
            self.busy_until = max(self.busy_until, t)

    def readline(self, timeout_s):
        end = self.t + timeout_s
        step = 0.01
        while True:
            self._run_until(self.t)
            if self.out and self.out[0][0] <= self.t:
                return self.out.pop(0)[1]
            if self.t >= end:
                return None
            self.t = min(end, self.t + step)

    def pending_text(self):
        return b""


def test_a_slow_boot_gets_one_request_at_a_time():
    b = SlowBoard(boot_s=6.7)
    st = Client(b, timeout_s=3.0, clock=b.clock).wait_ready(20)
    assert st["board"] == "sim"
    # one request per 3 s reply timeout while the board boots (0, 3, 6 s), not one every 0.5 s
    assert len(b.sent_at) <= 3
    assert all(t2 - t1 >= 3.0 - 1e-9 for t1, t2 in zip(b.sent_at, b.sent_at[1:], strict=False))
    assert b.max_queued <= 3


def test_a_request_lost_in_the_reset_is_asked_again_soon_after_the_boot_event():
    b = SlowBoard(boot_s=1.0, lose_before_boot=True)
    st = Client(b, timeout_s=3.0, clock=b.clock).wait_ready(20)
    assert st["fw"] == "x"
    assert len(b.sent_at) == 2
    assert b.t < 1.0 + 0.5 + 0.5  # boot, the grace, one reply: not a whole 3 s timeout


def test_an_id_less_error_is_asked_again_at_once():
    b = SlowBoard(boot_s=0.0, garbage=True)
    c = Client(b, timeout_s=3.0, clock=b.clock)
    assert c.wait_ready(20)["board"] == "sim"
    assert len(b.sent_at) == 2
    assert b.t < 1.0


def test_no_board_says_so_after_the_timeout():
    b = SlowBoard(boot_s=1e9)
    with pytest.raises(PumpctlError, match="did not come back within 10 s"):
        Client(b, timeout_s=3.0, clock=b.clock).wait_ready(10)
    assert len(b.sent_at) == 4  # 0, 3, 6, 9 s
