"""Property tests for the dose guard: hypothesis drives it with arbitrary scheduler requests, tick
patterns, motor confirmation lags and clock starts (across the 2**30 tick wrap) against an independent
reference (exact sums over absolute time). The guarantee checked: docs/dosing.md, "The dose guard"."""

from bisect import bisect_left, bisect_right

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fakes import TICKS_PERIOD, FakeClock
from itpump.guard import D1_BUCKET_MS, H1_BUCKET_MS, MS_PER_H, RATE_BURST_MS, Guard, Limits

H = 3600000
D = 24 * H

limits_st = st.tuples(
    st.one_of(st.integers(1, 1000000), st.integers(100000, 1000000)),  # rate steps/h (often not binding)
    st.one_of(st.integers(1, 300), st.integers(1, 3000)),  # 1 h
    st.one_of(st.integers(0, 300), st.integers(0, 20000)),  # extra for 24 h
).map(lambda t: (t[0], t[1], t[1] + t[2]))

# gaps near the bucket and window edges, where rounding would hide an overdose
EDGES = [H1_BUCKET_MS, D1_BUCKET_MS, H, D]
edge_st = st.tuples(st.sampled_from(EDGES), st.sampled_from([1, 2, 3, 4, 23]), st.integers(-1500, 1500)).map(
    lambda t: max(0, t[0] * t[1] // (t[1] if t[0] >= H else 1) + t[2]))
# just under a window: the case a ring one bucket short would let through
under_st = st.one_of(st.integers(H - H1_BUCKET_MS, H), st.integers(D - D1_BUCKET_MS, D))
gap_st = st.one_of(st.integers(0, 250), st.integers(0, 20000), st.integers(0, 3 * H), edge_st, under_st)

event_st = st.tuples(
    gap_st,  # time since previous tick
    st.one_of(st.integers(0, 2000), st.just(10 ** 6)),  # scheduler request (steps)
    st.integers(0, 100),  # percent of in-flight steps the driver confirms this tick
    st.booleans(),  # also confirm right after issuing (fast motor)
)

start_st = st.one_of(st.integers(0, TICKS_PERIOD - 1), st.integers(TICKS_PERIOD - 5 * H, TICKS_PERIOD - 1))


class Sim:
    def __init__(self, lim, start):
        self.lim = Limits(*lim)
        self.rate, self.h1, self.d1 = lim
        self.burst = max(1, self.rate * RATE_BURST_MS // MS_PER_H)
        self.clock = FakeClock(start)
        self.t = 0  # absolute ms since start (never wraps)
        self.g = Guard(self.lim, self.clock)
        self.times = []  # absolute times of records (non-decreasing)
        self.steps = []
        self.prefix = [0]
        self.in_flight = 0

    def now(self):
        return self.clock.now

    def advance(self, ms):
        self.t += ms
        self.clock.advance(ms)

    def record(self, n):
        v = self.g.record(n, self.now())
        if n:
            self.times.append(self.t)
            self.steps.append(n)
            self.prefix.append(self.prefix[-1] + n)
        return v

    def sum_window(self, lo_excl, hi_incl):
        """True delivered in (lo_excl, hi_incl] absolute ms."""
        a = bisect_right(self.times, lo_excl)
        b = bisect_right(self.times, hi_incl)
        return self.prefix[b] - self.prefix[a]

    def sum_closed(self, lo_incl, hi_incl):
        a = bisect_left(self.times, lo_incl)
        b = bisect_right(self.times, hi_incl)
        return self.prefix[b] - self.prefix[a]


def confirm(sim, pct):
    n = sim.in_flight * pct // 100
    sim.in_flight -= n
    return n


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits_st, start=start_st, events=st.lists(event_st, min_size=1, max_size=250))
@example(lim=(1000000, 100, 10000), start=0, events=[(30000, 10 ** 6, 100, True), (H - 1000, 10 ** 6, 100, True)])
@example(lim=(1000000, 100, 150), start=TICKS_PERIOD - 5,
         events=[(400000, 10 ** 6, 100, True)] + [(H, 10 ** 6, 100, True)] * 23 + [(H - 1000, 10 ** 6, 100, True)])
def test_rolling_limits_and_rate_never_exceeded(lim, start, events):
    sim = Sim(lim, start)
    g = sim.g
    for gap, request, pct, fast in events:
        sim.advance(gap)
        assert sim.record(confirm(sim, pct)) == 0
        a = g.allowance(sim.now(), sim.in_flight)
        # liveness: the guard holds back at most one bucket of history beyond each window
        lower = min(g._credit,
                    sim.h1 - sim.sum_window(sim.t - H - H1_BUCKET_MS, sim.t),
                    sim.d1 - sim.sum_window(sim.t - D - D1_BUCKET_MS, sim.t)) - sim.in_flight
        assert a >= lower
        n = min(request, a)
        sim.in_flight += n
        if fast:
            assert sim.record(confirm(sim, 100)) == 0
    # flush: the driver confirms everything still queued
    sim.advance(100)
    assert sim.record(sim.in_flight) == 0
    assert g.violation() == 0
    # safety: every window ending at a record (windows ending elsewhere hold no more) is within limits
    for t in sim.times:
        assert sim.sum_window(t - H, t) <= sim.h1
        assert sim.sum_window(t - D, t) <= sim.d1
    # hard rate: delivered in [ti, tj] <= burst + rate * (tj - ti) / 1 h, in exact integers
    ts = sorted(set(sim.times))
    for i, ti in enumerate(ts):
        for tj in ts[i:i + 40]:
            assert sim.sum_closed(ti, tj) * MS_PER_H <= sim.burst * MS_PER_H + sim.rate * (tj - ti)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits_st, start=start_st, events=st.lists(event_st, min_size=1, max_size=150),
       extra=st.lists(st.integers(0, 50), min_size=1, max_size=150))
def test_runaway_motor_is_flagged_no_later_than_the_overdose(lim, start, events, extra):
    sim = Sim(lim, start)
    g = sim.g
    for k, (gap, request, pct, _fast) in enumerate(events):
        sim.advance(gap)
        n = confirm(sim, pct) + extra[k % len(extra)]  # confirms more than was issued
        v = sim.record(n)
        if n:
            t = sim.t
            if sim.sum_window(t - H, t) > sim.h1 or sim.sum_window(t - D, t) > sim.d1:
                assert v != 0 and g.violation() != 0
        if g.violation():
            assert g.allowance(sim.now(), 0) == 0
        sim.in_flight += min(request, g.allowance(sim.now(), sim.in_flight))
