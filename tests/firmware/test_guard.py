# Dose guard (firmware/itpump/guard.py) under CPython and micropython.
import pytest

from fakes import TICKS_PERIOD, FakeClock, raises
from itpump import guard
from itpump.guard import V_1H, V_24H, V_RATE, Guard, Limits

pytestmark = pytest.mark.micropython

H = 3600000
MIN = 60000


def make(rate=36000, h1=600, d1=6000, start=TICKS_PERIOD - 1000):
    c = FakeClock(start)
    return c, Guard(Limits(rate, h1, d1), c)


def run(c, g, request, total_ms, tick_ms=100):
    """Deliver up to `request` per tick for total_ms; the motor confirms exactly what was issued."""
    given = 0
    for _ in range(total_ms // tick_ms):
        c.advance(tick_ms)
        n = g.allowance(c.now)
        if n > request:
            n = request
        g.record(n, c.now)
        given += n
    return given


def test_limits_validate_and_name_the_field():
    e = raises(ValueError, Limits, 0, 10, 100)
    assert "max_rate_steps_per_h" in str(e)
    e = raises(ValueError, Limits, 100, 200, 100)
    assert "max_1h_steps" in str(e) and "max_24h_steps" in str(e)
    raises(ValueError, Limits, 100, 1.5, 100)
    raises(ValueError, Limits, 100, True, 100)
    raises(ValueError, Limits, guard.MAX_RATE_STEPS_PER_H + 1, 10, 100)


def test_limits_from_nl_round_down():
    # 50 nL per step (50000 pL): 1049 nL -> 20 steps (20.98 rounded down, never up)
    lim = Limits.from_nl(50000, 1000000, 1049, 10000)
    assert lim.max_1h_steps == 20 and lim.max_24h_steps == 200
    assert lim.max_rate_steps_per_h == 20000
    raises(ValueError, Limits.from_nl, 0, 1, 1, 1)


def test_rate_is_capped_by_the_token_bucket():
    # 36000 steps/h = 10 steps/s, burst 10 steps
    c, g = make(rate=36000, h1=100000, d1=1000000)
    assert g.allowance(c.now) == 10  # full burst at start
    g.record(10, c.now)
    assert g.allowance(c.now) == 0
    c.advance(100)
    assert g.allowance(c.now) == 1  # 0.1 s of 10 steps/s
    given = run(c, g, 1000, 60000)
    assert 599 <= given <= 601, given  # 10/s over 60 s
    assert g.violation() == 0


def test_basal_and_bolus_share_the_one_hour_limit():
    # the open-PCA lesson: whatever asks for the steps, they all count
    c, g = make(rate=1000000, h1=600, d1=100000)
    basal = run(c, g, 1, 5 * MIN, tick_ms=1000)  # 1 step/s basal for 5 min
    assert basal == 300
    bolus = run(c, g, 1000, 10000, tick_ms=100)  # a big bolus request on top
    assert bolus == 300 and g.delivered_1h_steps(c.now) == 600
    assert run(c, g, 1, 10 * MIN, tick_ms=1000) == 0  # the basal too is held now


def test_one_hour_window_drains_conservatively():
    c, g = make(rate=1000000, h1=600, d1=100000)
    assert g.allowance(c.now) == 277  # burst: 1 s of 1e6 steps/h
    g.record(277, c.now)
    c.advance(1000)
    g.record(g.allowance(c.now), c.now)
    c.advance(1000)
    g.record(g.allowance(c.now), c.now)
    assert g.delivered_1h_steps(c.now) == 600 and g.allowance(c.now) == 0
    # one hour after the delivery it is still counted (bucket granularity: conservative) ...
    c.advance(H - 2000)
    assert g.allowance(c.now) == 0
    # ... and it has aged out once window + one bucket passed
    c.advance(MIN)
    assert g.delivered_1h_steps(c.now) == 0
    assert g.allowance(c.now) == 277


def test_twenty_four_hour_limit():
    c, g = make(rate=1000000, h1=1000, d1=3000)
    total = 0
    for _ in range(6):  # 6 hours, each hour tries to give the whole 1 h limit
        total += run(c, g, 1000, H, tick_ms=1000)
    assert total == 3000 and g.delivered_24h_steps(c.now) == 3000
    # deliveries were at ~0 h, ~1 h and ~2 h (each hour window + one 1-min bucket apart); now it is 6 h
    c.advance(17 * H)
    assert g.allowance(c.now) == 0  # 23 h after the first dose
    c.advance(H + 30 * MIN)
    assert g.delivered_24h_steps(c.now) == 2000  # only the first hour's 1000 aged out
    assert g.allowance(c.now) == 277  # hard-rate burst


def test_in_flight_steps_reduce_the_allowance():
    c, g = make(rate=36000, h1=600, d1=6000)
    assert g.allowance(c.now, 4) == 6
    assert g.allowance(c.now, 50) == 0


def test_runaway_motor_is_a_latched_violation():
    c, g = make(rate=36000, h1=100, d1=6000)
    assert g.record(11, c.now) == V_RATE  # burst is 10
    assert g.violation() & V_RATE
    assert g.allowance(c.now) == 0  # nothing more while violated
    c.advance(H)
    assert g.violation() & V_RATE  # latched until handled
    g.clear_violation()
    assert g.violation() == 0 and g.allowance(c.now) > 0
    c2, g2 = make(rate=1000000, h1=100, d1=200)
    assert g2.record(101, c2.now) == V_1H
    c3, g3 = make(rate=1000000, h1=100, d1=100)
    assert g3.record(101, c3.now) == V_1H | V_24H
    c4, g4 = make()
    assert g4.record(1 << 40, c4.now) == V_RATE | V_1H | V_24H  # glitched count: clamped, flagged
    assert g4.delivered_24h_steps(c4.now) == guard.MAX_WINDOW_STEPS


def test_clock_wrap_and_backwards_time_are_safe():
    c, g = make(rate=1000000, h1=300, d1=100000, start=TICKS_PERIOD - 10)
    g.record(277, c.now)
    c.advance(20)  # wraps past 2**30
    assert c.now < 100
    assert g.delivered_1h_steps(c.now) == 277
    assert g.allowance(c.now) == 5  # 20 ms of credit, not a huge jump
    g.allowance((c.now - 5000) % TICKS_PERIOD)  # a time in the past counts as no elapsed time
    assert g.delivered_1h_steps(c.now) == 277
    c.advance(H + MIN)
    assert g.delivered_1h_steps(c.now) == 0


def test_state_roundtrip_assumes_no_time_passed_across_reboot():
    c, g = make(rate=1000000, h1=1000, d1=5000)
    run(c, g, 10, 10 * MIN, tick_ms=1000)
    d = g.to_dict(c.now)
    assert g.delivered_1h_steps(c.now) == 1000
    # reboot: the clock restarts anywhere, the gap is unknown
    c2 = FakeClock(12345)
    g2 = Guard(Limits(1000000, 1000, 5000), c2)
    g2.from_dict(d, unrecorded_steps=3)
    assert g2.delivered_1h_steps(c2.now) == 1003 and g2.delivered_24h_steps(c2.now) == 1003
    assert g2.violation() == V_1H  # the unrecorded worst case pushed it over: flagged, not hidden
    g3 = Guard(Limits(1000000, 1000, 5000), c2)
    g3.from_dict(d)
    assert g3.allowance(c2.now) == 0  # rate credit restarts empty and the hour is still full
    c2.advance(50 * MIN)
    assert g3.delivered_1h_steps(c2.now) == 1000  # no delivery ages out early
    c2.advance(12 * MIN)
    assert g3.delivered_1h_steps(c2.now) < 1000


def test_bad_state_is_rejected_and_changes_nothing():
    c, g = make()
    g.record(5, c.now)
    good = g.to_dict()
    for bad, what in (({"v": 2}, "version"),
                      ({"v": 1, "h1": {"bucket_ms": 1000}}, "h1.bucket_ms"),
                      ({"v": 1, "h1": good["h1"], "d1": dict(good["d1"], counts=[0] * 3)}, "d1.counts"),
                      ({"v": 1, "h1": dict(good["h1"], idx=99), "d1": good["d1"]}, "h1.idx"),
                      ({"v": 1, "h1": dict(good["h1"], counts=[-1] + [0] * 60), "d1": good["d1"]}, "h1.counts")):
        e = raises(ValueError, g.from_dict, bad)
        assert what in str(e), (what, str(e))
        assert g.delivered_1h_steps(c.now) == 5
    raises(ValueError, g.from_dict, good, None, -1)


def test_assume_full_blocks_until_the_day_drains():
    c, g = make(rate=1000000, h1=600, d1=6000)
    g.assume_full()
    assert g.allowance(c.now) == 0
    c.advance(23 * H)
    assert g.allowance(c.now) == 0
    c.advance(H + 15 * MIN)
    assert g.allowance(c.now) > 0


def test_set_limits_keeps_the_count():
    c, g = make(rate=1000000, h1=600, d1=6000)
    g.record(200, c.now)
    g.set_limits(Limits(1000000, 250, 6000))
    assert g.allowance(c.now) == 50
    raises(ValueError, g.set_limits, {"max_1h_steps": 1})
