# The per-tick calls of the safety layer (guard, alarms, supervisor, power) allocate nothing: under
# micropython they run inside micropython.heap_lock(), where any allocation raises MemoryError.
# Under CPython the same loops run unlocked (they still check the calls' results).
# Caveat: the unix port has 63-bit small ints, so an int >= 2**30 would not allocate here but would on
# rp2; the modules keep their numbers below 2**30 by construction (see their headers).
import sys

import pytest

from fakes import TICKS_PERIOD, FakeClock
from itpump import alarms, guard, power, supervisor

pytestmark = pytest.mark.micropython

MPY = sys.implementation.name == "micropython"
if MPY:
    import micropython


class Wdt:
    def __init__(self):
        self.fed = 0

    def start(self, timeout_ms):
        self.timeout_ms = timeout_ms

    def feed(self):
        self.fed += 1


class Buzzer:
    def __init__(self):
        self.hz = 0

    def tone(self, hz):
        self.hz = hz

    def off(self):
        self.hz = 0


class Led:
    def __init__(self):
        self.on = 0

    def value(self, on):
        self.on = on


def locked(fn, arg):
    """Run fn(arg) with the heap locked on micropython; fail naming fn if it allocates."""
    if not MPY:
        return fn(arg)
    micropython.heap_lock()
    try:
        r = fn(arg)
    except MemoryError:
        micropython.heap_unlock()
        raise AssertionError("allocated under heap_lock: %s" % fn.__name__)
    micropython.heap_unlock()
    return r


def _guard_ticks(s):
    c, g = s
    total = 0
    for _ in range(3000):  # 5 min of 100 ms ticks: minute buckets roll, credit accrues, wrap passes
        c.advance(100)
        n = g.allowance(c.now, 0)
        if n > 3:
            n = 3
        g.record(n, c.now)
        total += n
        if g.violation():
            return -1
    return total


def test_guard_tick_allocates_nothing():
    c = FakeClock(TICKS_PERIOD - 60000)
    g = guard.Guard(guard.Limits(36000, 2000, 20000), c)
    total = locked(_guard_ticks, (c, g))
    assert total == 2000  # 1 step per tick at 10 steps/s, then held at the 1 h limit
    assert c.now < 300000  # crossed the 2**30 wrap


def _alarm_ticks(s):
    c, m = s
    on = 0
    for _ in range(2000):
        c.advance(100)
        m.raise_alarm(alarms.BATTERY_ERI, c.now)  # still present: the cheap path
        m.clear_condition(alarms.RESERVOIR_LOW, c.now)  # not present: nothing to do
        if m.tick(c.now):
            on += 1
    return on


def test_alarm_tick_allocates_nothing():
    c = FakeClock(TICKS_PERIOD - 30000)
    m = alarms.AlarmManager(c, Buzzer(), Led())
    m.raise_alarm(alarms.BATTERY_ERI, c.now)
    m.raise_alarm(alarms.RESERVOIR_LOW, c.now)
    m.raise_alarm(alarms.OCCLUSION, c.now)
    m.ack(alarms.OCCLUSION, c.now)  # silenced high: LED flashes, medium sounds, escalates at 2 min
    on = locked(_alarm_ticks, (c, m))
    assert on > 0 and m.active()[1]["escalated"]


def _supervisor_ticks(s):
    c, sup, a, b = s
    fed = 0
    for _ in range(2000):
        c.advance(100)
        sup.check_in(a, c.now)
        sup.check_in(b, c.now)
        if sup.service(c.now):
            fed += 1
    return fed


def test_supervisor_tick_allocates_nothing():
    c = FakeClock(TICKS_PERIOD - 30000)
    w = Wdt()
    sup = supervisor.Supervisor(w, c, None, 5000)
    a = sup.add_task("control", 500)
    b = sup.add_task("link", 1000)
    sup.start(c.now)
    assert locked(_supervisor_ticks, (c, sup, a, b)) == 2000 and w.fed == 2001


def _power_samples(m):
    st = 0
    for i in range(2000):
        st = m.update(4590 - i // 2)  # slow discharge into LOW
    return st


def test_power_update_allocates_nothing():
    m = power.BatteryMonitor()
    m.update(4600)
    assert locked(_power_samples, m) == power.LOW
