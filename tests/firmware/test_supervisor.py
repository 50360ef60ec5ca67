# Supervisor (firmware/itpump/supervisor.py) under CPython and micropython.
import pytest

from fakes import TICKS_PERIOD, FakeBoard, FakeClock, raises
from itpump import alarms, supervisor
from itpump.supervisor import STABLE_MS, Supervisor

pytestmark = pytest.mark.micropython


class Wdt:
    """Models the hardware watchdog: it 'fires' when not fed within its timeout."""

    def __init__(self, clock):
        self.clock = clock
        self.timeout_ms = None
        self.last_feed = None
        self.feeds = 0

    def start(self, timeout_ms):
        assert self.timeout_ms is None, "started twice"
        self.timeout_ms = timeout_ms
        self.last_feed = self.clock.ticks_ms()

    def feed(self):
        self.last_feed = self.clock.ticks_ms()
        self.feeds += 1

    def fired(self):
        return self.clock.ticks_diff(self.clock.ticks_ms(), self.last_feed) > self.timeout_ms


class Persist:
    def __init__(self, rec=None, fail=False):
        self.rec = rec
        self.fail = fail
        self.saves = 0

    def load(self):
        if self.fail:
            raise OSError(5)
        return None if self.rec is None else dict(self.rec)

    def save(self, rec):
        self.rec = dict(rec)
        self.saves += 1


class Motor:
    def __init__(self, stop_fails=False):
        self.stop_fails = stop_fails
        self.stopped = False
        self.enabled = True

    def stop(self):
        if self.stop_fails:
            raise OSError("driver not answering")
        self.stopped = True

    def enable(self, on):
        self.enabled = on


def make(start=TICKS_PERIOD - 3000, persist=None):
    c = FakeClock(start)
    w = Wdt(c)
    s = Supervisor(w, c, persist, timeout_ms=2000)
    tick = s.add_task("control", 500)
    link = s.add_task("link", 1000)
    return c, w, s, tick, link


def test_fed_only_when_every_task_checked_in_on_time():
    c, w, s, tick, link = make()
    s.start(c.now)
    assert w.timeout_ms == 2000
    for i in range(50):  # 5 s across the 2**30 wrap, both tasks healthy
        c.advance(100)
        s.check_in(tick, c.now)
        if i % 5 == 0:
            s.check_in(link, c.now)
        assert s.service(c.now) is True
        assert not w.fired()
    assert c.now < 10000  # wrapped
    # the link task hangs: feeding stops once its deadline passes, and the watchdog fires
    fed = 0
    for _ in range(40):
        c.advance(100)
        s.check_in(tick, c.now)
        if s.service(c.now):
            fed += 1
    assert 5 <= fed <= 10
    assert s.late_task() == "link" and w.fired()
    assert s.late_id == link  # the id add_task gave it: what the app logs (one table of tasks, the app's)


def test_a_missed_deadline_latches():
    c, w, s, tick, link = make()
    s.start(c.now)
    c.advance(600)
    s.check_in(link, c.now)
    assert s.service(c.now) is False and s.late_task() == "control" and s.late_id == tick
    s.check_in(tick, c.now)
    assert s.service(c.now) is False  # the reset is coming; no recovery by feeding again
    st = s.status(c.now)
    assert st["late"] == "control" and st["tasks"]["link"]["deadline_ms"] == 1000


def test_a_hung_loop_lets_the_watchdog_fire():
    c, w, s, tick, link = make()
    s.start(c.now)
    c.advance(2001)  # nobody calls service()
    assert w.fired()


def test_configuration_errors():
    c = FakeClock()
    w = Wdt(c)
    e = raises(ValueError, Supervisor, w, c, None, 9000)
    assert "timeout_ms" in str(e) and "8388" in str(e)
    s = Supervisor(w, c)
    raises(ValueError, s.start)  # no tasks
    raises(ValueError, s.add_task, "x", 0)
    s.add_task("x", 100)
    s.start()
    e = raises(ValueError, s.add_task, "y", 100)
    assert "already running" in str(e)
    assert s.service(c.now) is True


def test_first_power_on():
    p = Persist()
    c, w, s, tick, link = make(persist=p)
    d = s.boot("PWRON")
    assert d == {"cause": "PWRON", "wdt_resets": 0, "safe_mode": False, "bolus": "abandon",
                 "resume_basal": True, "alarms": [], "record": "none"}
    assert p.rec == {"wdt_resets": 0, "intent": False, "safe": False}


def test_watchdog_reset_abandons_the_bolus_and_raises_the_alarm():
    p = Persist({"wdt_resets": 0, "intent": False, "safe": False})
    c, w, s, tick, link = make(persist=p)
    d = s.boot("WDT")
    assert d["bolus"] == "abandon" and d["alarms"] == [alarms.WATCHDOG_RESET]
    assert d["wdt_resets"] == 1 and not d["safe_mode"] and d["resume_basal"] and d["record"] == "ok"


def test_an_interpreter_crash_counts_as_an_unexpected_reset():
    # the virtual board's bridge restarts a dead interpreter with cause CRASH: a crash loop must end in
    # safe mode like a watchdog loop, and each one raises the unexpected-reset alarm
    p = Persist()
    for n in (1, 2, 3):
        c, w, s, tick, link = make(persist=p)
        d = s.boot("CRASH")
        assert d["cause"] == "CRASH" and d["wdt_resets"] == n and alarms.WATCHDOG_RESET in d["alarms"]
    assert d["safe_mode"]


def test_boot_loop_enters_safe_mode_and_stays_there():
    p = Persist()
    for n in (1, 2):
        c, w, s, tick, link = make(persist=p)
        d = s.boot("WDT")
        assert d["wdt_resets"] == n and not d["safe_mode"]
    c, w, s, tick, link = make(persist=p)
    d = s.boot("WDT")
    assert d["safe_mode"] and not d["resume_basal"]
    assert d["alarms"] == [alarms.WATCHDOG_RESET, alarms.INTERNAL]
    # a power cycle does not get out of safe mode, nor does a long healthy run in it
    c, w, s, tick, link = make(persist=p)
    d = s.boot("PWRON")
    assert d["safe_mode"] and d["alarms"] == [alarms.INTERNAL]
    s.start(c.now)
    for _ in range(STABLE_MS // 500 + 10):
        c.advance(500)
        s.check_in(tick, c.now)
        s.check_in(link, c.now)
        s.service(c.now)
    assert p.rec["safe"] is True and p.rec["wdt_resets"] == 3
    # until a clinician clears it
    s.clear_safe_mode()
    c, w, s, tick, link = make(persist=p)
    d = s.boot("PWRON")
    assert not d["safe_mode"] and d["wdt_resets"] == 0


def test_a_stable_run_ends_the_count():
    p = Persist({"wdt_resets": 1, "intent": False, "safe": False})
    c, w, s, tick, link = make(persist=p)
    assert s.boot("WDT")["wdt_resets"] == 2
    s.start(c.now)
    saves = p.saves
    for _ in range(STABLE_MS // 500 - 1):
        c.advance(500)
        s.check_in(tick, c.now)
        s.check_in(link, c.now)
        s.service(c.now)
    assert p.rec["wdt_resets"] == 2 and p.saves == saves
    c.advance(500)
    s.check_in(tick, c.now)
    s.check_in(link, c.now)
    s.service(c.now)
    assert p.rec["wdt_resets"] == 0 and p.saves == saves + 1
    c, w, s, tick, link = make(persist=p)
    assert s.boot("WDT")["wdt_resets"] == 1


def test_intentional_reset_is_not_counted():
    p = Persist({"wdt_resets": 2, "intent": False, "safe": False})
    c, w, s, tick, link = make(persist=p)
    s.boot("PWRON")
    s.note_intentional_reset()
    assert p.rec["intent"] is True
    c, w, s, tick, link = make(persist=p)
    d = s.boot("WDT")  # machine.reset() reads as a watchdog reset on rp2
    assert d["cause"] == "INTENTIONAL" and d["wdt_resets"] == 2 and not d["safe_mode"] and d["alarms"] == []
    assert p.rec["intent"] is False
    c, w, s, tick, link = make(persist=p)
    assert s.boot("WDT")["safe_mode"]  # the marker is used once


def test_unusable_record_is_reported():
    p = Persist({"wdt_resets": "many"})
    c, w, s, tick, link = make(persist=p)
    d = s.boot("WDT")
    assert d["record"].startswith("invalid") and "wdt_resets" in d["record"] and d["wdt_resets"] == 1
    p = Persist(fail=True)
    c, w, s, tick, link = make(persist=p)
    d = s.boot("PWRON")
    assert d["record"].startswith("load failed") and d["wdt_resets"] == 0


def test_safe_state_stops_the_motor_even_when_a_step_fails():
    b = FakeBoard()
    assert supervisor.safe_state(b) is True  # no motor yet
    b.motor = Motor()
    assert supervisor.safe_state(b) is True and b.motor.stopped and not b.motor.enabled
    b.motor = Motor(stop_fails=True)
    assert supervisor.safe_state(b) is False and not b.motor.enabled
