"""Dosing.tick and Pulsation._sum_pl split into steps (frames within 11 words, off the chip's heap:
docs/epico.md) give exactly what the code before the split gave: the steps of every tick, what
confirms and edges deliver, and every field of the engine and the therapy, on random prescriptions
(schedule segments, midnight, boluses ending at their volume), profiles, edges and tick patterns."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from itpump import dosing, drugs, pulsation
from itpump.dosing import DAY_MS, MAX_TICK_MS, SETTLE_DIV
from itpump.pulsation import PROFILE_BINS


# The code before the split, verbatim (firmware/itpump/dosing.py and pulsation.py at c23bd4d).
def _old_tick(self, therapy, elapsed_ms, tod_ms):
    """Integrate the therapy over the elapsed_ms ending at tod_ms (ms of day); return the whole
    microsteps now due (counted in flight)."""
    if elapsed_ms > MAX_TICK_MS:
        self.skipped_ms += elapsed_ms - MAX_TICK_MS
        elapsed_ms = MAX_TICK_MS
    if elapsed_ms < 0:
        elapsed_ms = 0
    # basal, piecewise over the schedule segments the interval spans
    t = tod_ms - elapsed_ms
    if t < 0:
        t += DAY_MS
    left = elapsed_ms
    pl = self._basal_pl
    while left > 0:
        rate = therapy.basal_nl_per_h(t)
        piece = therapy.seg_end_ms - t
        if piece > left:
            piece = left
        pl += self._integrate(rate, piece, self._basal_rem)
        self._basal_rem = self._r
        t += piece
        if t >= DAY_MS:
            t -= DAY_MS
        left -= piece
    basal_nl = pl // 1000
    self._basal_pl = pl - basal_nl * 1000
    # bolus, ending exactly at its volume (the fraction of a nL beyond it is dropped)
    bolus_nl = 0
    rate = therapy.bolus_nl_per_h()
    if rate:
        pl = self._bolus_pl + self._integrate(rate, elapsed_ms, self._bolus_rem)
        self._bolus_rem = self._r
        bolus_nl = pl // 1000
        self._bolus_pl = pl - bolus_nl * 1000
        if bolus_nl >= therapy.bolus_left_nl:
            bolus_nl = therapy.bolus_left_nl
            self._bolus_pl = self._bolus_rem = 0
    else:
        self._bolus_pl = self._bolus_rem = 0
    therapy.programmed(basal_nl, bolus_nl)
    therapy.update(tod_ms)
    nl = basal_nl + bolus_nl
    self.programmed_nl += nl
    due = self._due_pl + nl * 1000
    o = self.owed_pl
    if o:  # the first edge's re-pricing, settled on the programme at most 1/SETTLE_DIV at a time
        cap = (nl * 1000 + SETTLE_DIV - 1) // SETTLE_DIV
        if o > cap:
            o = cap
        elif o < -cap:
            o = -cap
        due += o
        self.owed_pl -= o
    if not self.phase_known:
        steps = due // self.pl_per_step if due > 0 else 0
        self._due_pl = due - steps * self.pl_per_step
        self.in_flight += steps
        return steps
    # paced: each next step only when the due volume covers it at its phase (bin by bin)
    q = self.phase_steps + self.in_flight + self.lead_steps  # phase of the next step
    vol = self._vol
    bound = self._bound
    steps = 0
    if q < 0:  # before the pass start (this magnet sits ahead of the mean): the pass end's volume
        v = vol[PROFILE_BINS - 1]
        n = due // v if due > 0 else 0  # due is negative after in-flight steps were re-priced up
        if n > -q:
            n = -q
        due -= n * v
        q += n
        steps = n
        if q < 0:
            self._due_pl = due
            self.in_flight += steps
            return steps
    b = self._bin(q)
    while True:
        v = vol[b]
        if due < v:
            break
        n = due // v
        if b < PROFILE_BINS - 1:
            room = bound[b] - q
            if n >= room:
                n = room
                b += 1
        due -= n * v
        q += n
        steps += n
    self._due_pl = due
    self.in_flight += steps
    return steps

def _old_sum_pl(self, phase, n):
    """Volume of n steps from `phase` on at the current phase state (no allocation for tick-sized n)."""
    if n <= 0:
        return 0
    if not self.phase_known:
        return n * self.pl_per_step
    vol = self._vol
    bound = self._bound
    phase += self.lead_steps
    pl = 0
    if phase < 0:  # see tick(): before the pass start
        k = n if n < -phase else -phase
        pl = k * vol[PROFILE_BINS - 1]
        phase += k
        n -= k
        if n <= 0:
            return pl
    b = self._bin(phase)
    while n > 0:
        k = n
        if b < PROFILE_BINS - 1:
            room = bound[b] - phase
            if k > room:
                k = room
        pl += k * vol[b]
        phase += k
        n -= k
        b += 1
    return pl


class Before(dosing.Dosing):
    tick = _old_tick
    _sum_pl = _old_sum_pl


class Schedule:
    """A therapy stand-in: basal segments over the day, a bolus at a rate up to its volume; it records
    what it is told."""

    def __init__(self, starts, rates):
        self.starts = starts  # ms of day, the first 0
        self.rates = rates
        self.seg_end_ms = DAY_MS
        self.bolus = 0
        self.bolus_left_nl = 0
        self.told = []

    def basal_nl_per_h(self, tod_ms):
        i = len([s for s in self.starts if s <= tod_ms]) - 1
        self.seg_end_ms = self.starts[i + 1] if i + 1 < len(self.starts) else DAY_MS
        return self.rates[i]

    def bolus_nl_per_h(self):
        return self.bolus if self.bolus_left_nl else 0

    def programmed(self, basal_nl, bolus_nl):
        self.told.append((basal_nl, bolus_nl))
        self.bolus_left_nl -= bolus_nl

    def update(self, tod_ms):
        self.told.append(tod_ms)


@st.composite
def profiles(draw):
    """None (flat), or 32 bins within +-40 % of the mean summing to 0."""
    if draw(st.booleans()):
        return None
    raw = draw(st.lists(st.integers(-400000, 400000), min_size=PROFILE_BINS, max_size=PROFILE_BINS))
    mean = sum(raw) // PROFILE_BINS
    prof = [max(-400000, min(400000, x - mean)) for x in raw]
    prof[-1] -= sum(prof)
    return prof if -400000 <= prof[-1] <= 400000 else None


def _ops(rng, n):
    """n ticks: ms since the last (mostly the 100 ms tick; negative, long, beyond the cap), the % of
    what is in flight confirmed, an index edge in a batch of that many steps (-1: forget the phase,
    -2: withhold, -3: none), the magnet's lead, a bolus's rate (0: none) and volume in nL."""
    for _ in range(n):
        ms = rng.choice((100, 100, 100, rng.randint(-50, 400), rng.randint(0, MAX_TICK_MS + 3000)))
        edge = rng.choice((-3, -3, -3, -3, -2, -1, rng.randint(0, 60)))
        bolus = rng.choice((0,) * 20 + (rng.randint(1, 3 * drugs.MAX_RATE_NL_PER_H // 4),))
        yield ms, rng.randint(0, 100), edge, rng.randint(-500, 500), bolus, rng.randint(0, 20000)


@settings(max_examples=150, deadline=None)
@given(pl=st.integers(dosing.PL_PER_STEP_MIN, 120000), prof=profiles(),
       spp_milli=st.integers(pulsation.SPP_MILLI_MIN, 3_000_000),
       starts=st.sets(st.integers(1, DAY_MS - 1), max_size=6),
       rates=st.lists(st.integers(0, drugs.MAX_BASAL_NL_PER_H), min_size=7, max_size=7),
       tod=st.integers(0, DAY_MS - 1), seed=st.integers(0, 2**32))
def test_the_split_tick_steps_and_books_exactly_as_before(pl, prof, spp_milli, starts, rates, tod, seed):
    starts = [0] + sorted(starts)
    rates = rates[:len(starts)]
    new, old = dosing.Dosing(pl, prof, spp_milli), Before(pl, prof, spp_milli)
    th_new, th_old = Schedule(starts, rates), Schedule(starts, rates)
    for i, (ms, pct, edge, lead, bolus, vol) in enumerate(_ops(random.Random(seed), 400)):
        if bolus and not th_new.bolus_left_nl:
            th_new.bolus = th_old.bolus = bolus
            th_new.bolus_left_nl = th_old.bolus_left_nl = vol
        if i % 97 == 96:  # a first edge's re-pricing settles over many ticks: some owed either way
            new.owed_pl = old.owed_pl = lead * SETTLE_DIV
        tod = (tod + max(ms, 0)) % DAY_MS
        assert new.tick(th_new, ms, tod) == old.tick(th_old, ms, tod)
        c = new.in_flight * pct // 100
        assert new.confirm(c) == old.confirm(c)
        if edge >= 0:
            b = min(edge, c)
            assert new.index_edge(b, lead) == old.index_edge(b, lead)
        elif edge == -1:
            new.forget_phase()
            old.forget_phase()
        elif edge == -2:
            new.withhold(pct % 7)
            old.withhold(pct % 7)
        assert vars(new) == vars(old)
        assert vars(th_new) == vars(th_old)
        for n in (1, 7, 300):  # a confirm's volume from any phase, also before the pass start
            for q in (-n, lead, new.phase_steps):
                assert new._sum_pl(q, n) == old._sum_pl(q, n), (q, n)
