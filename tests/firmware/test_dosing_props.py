"""Properties of the dosing engine (hypothesis, CPython): for any valid prescription and any tick
pattern, delivered volume never runs ahead of the programmed volume by more than one microstep and never
lags it by more than one tick's volume. The engine does better than the lag bound: it lags the exact
integral by less than one microstep plus 1 nL per stream, whatever the tick lengths."""

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from itpump import dosing, drugs, therapy


class Fixed:
    """Therapy stand-in with rates the test chooses per tick."""

    def __init__(self):
        self.basal = self.bolus = 0
        self.bolus_left_nl = 1 << 40
        self.seg_end_ms = therapy.DAY_MS

    def basal_nl_per_h(self, tod_ms):
        return self.basal

    def bolus_nl_per_h(self):
        return self.bolus

    def programmed(self, basal_nl, bolus_nl):
        pass

    def update(self, tod_ms):
        pass


ticks = st.integers(1, dosing.MAX_TICK_MS)
pl_per_step = st.integers(dosing.PL_PER_STEP_MIN, 120000)


@settings(max_examples=200, deadline=None)
@given(pl=pl_per_step, bolus=st.integers(0, drugs.MAX_RATE_NL_PER_H - drugs.MAX_BASAL_NL_PER_H),
       pattern=st.lists(st.tuples(ticks, st.integers(0, drugs.MAX_BASAL_NL_PER_H), st.integers(0, 100)),
                        min_size=1, max_size=1000))
def test_steps_track_the_exact_integral_of_any_rate_pattern(pl, bolus, pattern):
    # The basal changes every tick; a bolus runs throughout (one that stops drops its last fraction
    # of a nL by design: it ended at its volume or was cancelled).
    th = Fixed()
    th.bolus = bolus
    d = dosing.Dosing(pl)
    exact = Fraction(0)  # pL
    asked = 0  # steps
    for ms, basal, confirm_pct in pattern:
        th.basal = basal
        tick_pl = Fraction((basal + bolus) * ms, 3600)
        exact += tick_pl
        s = d.tick(th, ms, 0)
        asked += s
        # the driver may confirm late: any part of what is in flight
        d.confirm(d.in_flight * confirm_pct // 100)
        delivered = d.delivered_nl * 1000 + d._deliv_pl
        assert delivered <= asked * pl  # only confirmed steps count
        # within "programmed + one microstep": in fact never ahead at all
        assert asked * pl <= exact
        # within "one tick's volume": in fact less than one microstep plus 1 nL per running stream
        assert exact - asked * pl < pl + (2000 if bolus else 1000)
        assert d.delivered_nl_up() * 1000 >= delivered  # reports round up
    d.confirm(d.in_flight)
    assert d.delivered_nl * 1000 + d._deliv_pl == asked * pl


def _prescription(draw):
    drug = draw(st.sampled_from(drugs.names()))
    cmin, cmax, dmin, dmax = drugs.limits(drug)
    conc = draw(st.integers(cmin, cmax))
    # doses whose rate lies in the device range at this concentration
    lo = max(1, (drugs.MIN_BASAL_NL_PER_H * 24 * conc) // 1000 + 1)
    hi = min(dmax, (drugs.MAX_BASAL_NL_PER_H * 24 * conc) // 1000 - 1)
    assume(lo <= hi)
    dose = st.integers(lo, hi)
    rx = {"drug": drug, "conc_ug_per_ml": conc, "catheter_volume_nl": 200000}
    if draw(st.booleans()):
        rx.update(mode="continuous", dose_ng_per_day=draw(dose))
    else:
        starts = sorted(draw(st.sets(st.integers(1, 1439), max_size=9)))
        rx.update(mode="flex", flex=[{"start_min": s, "dose_ng_per_day": draw(dose)} for s in [0] + starts])
    return rx


def _exact_rate(rx, tod_ms):
    """nL/h at a time of day, straight from the dose and concentration (no rounding)."""
    if rx["mode"] == "continuous":
        dose = rx["dose_ng_per_day"]
    else:
        dose = [s["dose_ng_per_day"] for s in rx["flex"] if s["start_min"] * 60000 <= tod_ms][-1]
    return Fraction(dose * 1000, rx["conc_ug_per_ml"] * 24)


@st.composite
def prescriptions(draw):
    rx = _prescription(draw)
    try:
        therapy.Therapy(rx)
    except therapy.LimitError:
        assume(False)  # e.g. a daily total below the drug's floor
    return rx


def _step(rx, tod_ms):
    """Index of the schedule step in force at a time of day."""
    if rx["mode"] == "continuous":
        return 0
    return [i for i, s in enumerate(rx["flex"]) if s["start_min"] * 60000 <= tod_ms][-1]


@settings(max_examples=60, deadline=None)
@given(rx=prescriptions(), pl=pl_per_step, start_tod=st.integers(0, therapy.DAY_MS - 1),
       pattern=st.lists(ticks, min_size=1, max_size=40), n=st.integers(1, 1500))
def test_delivered_follows_any_prescription_under_any_tick_pattern(rx, pl, start_tod, pattern, n):
    th = therapy.Therapy(rx)
    # (a) each step's rate is its dose through the concentration, to the nearest nL/h
    steps = [0] if rx["mode"] == "continuous" else [s["start_min"] * 60000 for s in rx["flex"]]
    assert len(th.rates) == len(steps)
    for r, tod in zip(th.rates, steps, strict=True):
        assert abs(r - _exact_rate(rx, tod)) <= Fraction(1, 2)
    # (b) delivery follows those rates over any tick pattern, across step changes and midnight
    d = dosing.Dosing(pl)
    tod = start_tod
    exact = Fraction(0)  # pL
    for i in range(n):
        ms = pattern[i % len(pattern)]
        t, left = tod, ms
        while left:  # steps change on whole minutes
            seg = min(left, 60000 - t % 60000)
            exact += Fraction(th.rates[_step(rx, t)] * seg, 3600)
            t = (t + seg) % therapy.DAY_MS
            left -= seg
        tod = t
        d.confirm(d.tick(th, ms, tod))
        delivered = d.delivered_nl * 1000 + d._deliv_pl
        assert delivered <= exact  # within "programmed + one microstep": never ahead at all
        assert exact - delivered < pl + 1000  # one microstep plus the nL the stream carries
