# The app's loop over a fake board (CPython and micropython).
import json

from fakes import TICKS_PERIOD, FakeBoard
from itpump import VERSION, app


def replies(board):
    return [json.loads(line) for line in board.serial.lines()]


def make():
    b = FakeBoard(cause="WDT")
    a = app.App(b)
    return b, a


def test_boot_event_names_firmware_board_and_reset_cause():
    b, a = make()
    a.boot()
    ev = replies(b)[0]
    assert ev == {"event": "boot", "fw": VERSION, "board": "fake", "reset_cause": "WDT"}


def test_status_and_ping_over_the_link():
    b, a = make()
    b.serial.feed(b'{"id":1,"op":"ping"}\n{"id":2,"op":"status"}\n')
    a.poll_link()
    r = replies(b)
    assert r[0] == {"id": 1, "ok": True, "result": {"pong": True}}
    st = r[1]["result"]
    assert r[1]["id"] == 2 and st["fw"] == VERSION and st["board"] == "fake"
    assert st["reset_cause"] == "WDT" and st["mem_free"] > 0 and "uptime_ms" in st


def test_bad_input_gets_errors_and_the_loop_keeps_serving():
    b, a = make()
    b.serial.feed(b"{oops\n" + b"x" * 5000 + b"\n" + b'{"id":5,"op":"warp"}\n\r\n' + b'{"id":6,"op":"ping"}\n')
    a.poll_link()
    r = replies(b)
    assert [m["ok"] for m in r] == [False, False, False, True]
    assert r[0]["error"]["code"] == "JSON"
    assert r[1]["error"]["code"] == "FRAME" and r[1]["id"] is None
    assert r[2]["error"]["code"] == "UNKNOWN_OP" and r[2]["id"] == 5
    assert r[3]["id"] == 6


def test_uptime_counts_across_the_tick_wrap():
    b, a = make()
    start = b.clock.ticks_ms()
    nt = b.clock.ticks_add(start, app.TICK_MS)
    for _ in range(600):  # 60 s of ticks; the fake clock wraps 1 s in
        nt = a.step(nt)
        nt = a.step(nt)
    assert b.clock.ticks_ms() < start  # it wrapped
    b.serial.feed(b'{"id":1,"op":"status"}\n')
    a.poll_link()
    st = replies(b)[0]["result"]
    assert 59000 <= st["uptime_ms"] <= 61000, st["uptime_ms"]
    assert st["ticks"] >= 590


def test_ticks_do_not_burst_after_a_stall():
    b, a = make()
    nt = b.clock.ticks_add(b.clock.ticks_ms(), app.TICK_MS)
    b.clock.advance(10000)  # the loop was stalled 10 s
    nt = a.step(nt)
    assert a.ticks == 1
    assert 0 < b.clock.ticks_diff(nt, b.clock.ticks_ms()) <= app.TICK_MS


def test_ctrl_c_interrupts_main_unless_locked():
    b, a = make()
    b.serial.feed(b"\x03")
    app.main(b)  # returns: KeyboardInterrupt leaves for the REPL
    b2 = FakeBoard()
    b2.set_repl_lock(True)
    b2.serial.feed(b"\x03")
    a2 = app.App(b2)
    a2.poll_link()  # plain data while locked: no exception
    assert TICKS_PERIOD == 1 << 30


def test_fault_injection_is_refused_by_name_on_a_real_board():
    b, a = make()
    b.serial.feed(b'{"id":1,"op":"sim.hang"}\n{"id":2,"op":"sim.bogus"}\n')
    a.poll_link()
    r = replies(b)
    assert r[0]["error"]["code"] == "SIM_ONLY" and "fake" in r[0]["error"]["message"]
    assert r[1]["error"]["code"] == "UNKNOWN_OP"


class _Wdt:
    def __init__(self):
        self.timeout_ms = None
        self.feeds = 0

    def start(self, timeout_ms):
        self.timeout_ms = timeout_ms

    def feed(self):
        self.feeds += 1


def test_watchdog_started_within_rp2_limit_and_fed_by_the_tick():
    b, a = make()
    b.wdt = _Wdt()
    a = app.App(b)
    b.serial.feed(b"\x03")  # run() starts the WDT, boots, then Ctrl-C ends it
    try:
        a.run()
    except KeyboardInterrupt:
        pass
    assert 0 < b.wdt.timeout_ms <= 8388
    feeds = b.wdt.feeds
    nt = b.clock.ticks_add(b.clock.ticks_ms(), app.TICK_MS)
    for _ in range(20):
        nt = a.step(nt)
    assert b.wdt.feeds >= feeds + 9


def test_board_ops_report_value_errors_as_bad_arguments():
    b, a = make()

    def op_x(args):
        raise ValueError("'s' must be a number")

    b.sim_ops = lambda: {"sim.x": op_x}
    a = app.App(b)
    b.serial.feed(b'{"id":3,"op":"sim.x","args":{"s":"no"}}\n')
    a.poll_link()
    r = replies(b)[0]
    assert r["error"]["code"] == "ARGS" and "'s' must be" in r["error"]["message"]


def test_leaving_for_the_repl_disables_the_watchdog():
    b, a = make()
    b.wdt = _Wdt()
    b.wdt.disabled = False

    def disable():
        b.wdt.disabled = True

    b.wdt.disable = disable
    b.serial.feed(b"\x03")
    app.main(b)
    assert b.wdt.timeout_ms and b.wdt.disabled
