# Rates -> microsteps, remainders, confirmed-only accounting, calibration (CPython and micropython).
import pytest

from fakes import FakeClock, heap_lock_pair, raises
from itpump import dosing, therapy
from itpump.drugs import MAX_RATE_NL_PER_H

pytestmark = pytest.mark.micropython

SMALL = 1 << 30  # rp2 small ints stay below this


class Fixed:
    """A therapy stand-in: constant basal and bolus rates, no bolus end."""

    def __init__(self, basal, bolus=0, bolus_left_nl=1 << 29):
        self.basal = basal
        self.bolus = bolus
        self.bolus_left_nl = bolus_left_nl
        self.seg_end_ms = therapy.DAY_MS
        self.basal_nl = self.bolus_nl = 0
        self.updates = 0

    def basal_nl_per_h(self, tod_ms):
        self.seg_end_ms = therapy.DAY_MS
        return self.basal

    def bolus_nl_per_h(self):
        return self.bolus if self.bolus_left_nl else 0

    def programmed(self, basal_nl, bolus_nl):
        self.basal_nl += basal_nl
        self.bolus_nl += bolus_nl
        self.bolus_left_nl -= bolus_nl

    def update(self, tod_ms):
        self.updates += 1


def delivered_pl(d):
    return d.delivered_nl * 1000 + d._deliv_pl


def test_remainder_carries_at_a_rate_far_below_a_step_per_tick():
    # 2000 nL/h, 100 ms ticks: 55.6 pL a tick against 20000 pL a step
    th = Fixed(2000)
    d = dosing.Dosing(20000)
    steps = 0
    for _ in range(36000):  # one hour
        s = d.tick(th, 100, 0)
        steps += s
        d.confirm(s)
    assert steps == 100 and d.delivered_nl == 2000 and th.basal_nl == 2000
    assert d.programmed_nl == 2000


def test_irregular_ticks_over_a_clock_wrap_do_not_drift():
    clock = FakeClock()  # starts 1 s before the 2**30 wrap
    th = Fixed(41666)
    d = dosing.Dosing(33333)
    last = clock.ticks_ms()
    total_ms = 0
    pattern = (1, 99, 100, 101, 250, 7, 1000, 3, 4999, 17)
    for i in range(3000):
        clock.advance(pattern[i % len(pattern)])
        now = clock.ticks_ms()
        dt = clock.ticks_diff(now, last)
        last = now
        total_ms += dt
        d.confirm(d.tick(th, dt, 0))
    assert clock.ticks_ms() < total_ms  # wrapped
    exact_pl = 41666 * total_ms * 1000 // 3600000
    lag = exact_pl - delivered_pl(d)
    assert 0 <= lag < 33333 + 1000, lag


def test_delivered_counts_only_confirmed_steps():
    th = Fixed(1000000)
    d = dosing.Dosing(20000)
    s = d.tick(th, 1000, 0)  # 277.8 nL -> 13 steps
    assert s == 13 and d.in_flight == 13 and d.delivered_nl == 0
    assert d.confirm(0) == 0 and d.delivered_nl == 0
    assert d.confirm(5) == 100000 and d.delivered_nl == 100 and d.in_flight == 8
    s2 = d.tick(th, 1000, 1000)
    assert d.in_flight == 8 + s2
    d.confirm(8 + s2)
    assert d.in_flight == 0 and d.delivered_nl == (13 + s2) * 20


def test_over_confirmation_is_counted_and_flagged():
    d = dosing.Dosing(20000)
    d.tick(Fixed(0), 100, 0)
    d.confirm(3)  # driver says 3 steps happened that nobody asked for
    assert d.over_confirmed == 3 and d.in_flight == 0 and d.delivered_nl == 60


def test_withheld_steps_are_dropped_not_caught_up():
    th = Fixed(360000)  # 100 nL/s = 5 steps/s
    d = dosing.Dosing(20000)
    s = d.tick(th, 1000, 0)
    assert s == 5
    d.withhold(5)  # the guard refused them
    assert d.withheld_steps == 5 and d.in_flight == 0
    assert d.tick(th, 1000, 1000) == 5  # no catch-up burst
    d.withhold(99)  # never more than in flight
    assert d.in_flight == 0 and d.withheld_steps == 10


def test_delivered_rounds_up_when_reported():
    d = dosing.Dosing(20001)
    d.tick(Fixed(1000000), 1000, 0)
    d.confirm(1)
    assert d.delivered_nl == 20 and d.delivered_nl_up() == 21
    assert d.take_programmed_nl() == 277 and d.take_delivered_nl() == 21  # 1 mL/h for 1 s
    assert d.delivered_nl_up() == 0 and d.programmed_nl == 0
    d.confirm(1)  # 20.001 nL more: 40.002 in all, 21 already reported
    assert d.delivered_nl_up() == 20
    d.confirm(998)  # 1000 steps = 20001 nL exactly
    assert d.delivered_nl_up() + 21 == 20001


def test_long_tick_is_capped_and_the_gap_reported():
    th = Fixed(36000)  # 10 nL/s
    d = dosing.Dosing(1000)
    s = d.tick(th, 60000, 0)  # the loop stalled a minute
    assert s == dosing.MAX_TICK_MS // 100 and d.skipped_ms == 60000 - dosing.MAX_TICK_MS
    assert d.tick(th, -5, 0) == 0


def test_max_rate_long_tick_keeps_small_ints():
    th = Fixed(MAX_RATE_NL_PER_H + 500000, MAX_RATE_NL_PER_H)  # basal over the limit is clamped
    d = dosing.Dosing(dosing.PL_PER_STEP_MIN)
    for _ in range(50):
        d.tick(th, dosing.MAX_TICK_MS, 0)
        for v in (d._basal_rem, d._basal_pl, d._bolus_rem, d._bolus_pl, d._due_pl, d.in_flight):
            assert 0 <= v < SMALL
        assert dosing.MAX_RATE_NL_PER_H * dosing.CHUNK_MS + 3600 < SMALL
    # 2 x 1 mL/h for 50 maximal ticks
    assert d.programmed_nl == 2 * (1000000 * 50 * dosing.MAX_TICK_MS // 3600000)


def test_bolus_stream_ends_exactly_at_its_volume():
    th = Fixed(0, 600000, bolus_left_nl=12345)
    d = dosing.Dosing(1000)
    n = 0
    while th.bolus_left_nl:
        n += d.tick(th, 333, 0)
    assert th.bolus_nl == 12345 and n == 12345
    assert d._bolus_pl == 0 and d._bolus_rem == 0


def test_basal_is_integrated_piecewise_across_flex_steps():
    rx = {"drug": "baclofen", "conc_ug_per_ml": 2000, "catheter_volume_nl": 200000, "mode": "flex",
          "flex": [{"start_min": 0, "dose_ng_per_day": 1000000}, {"start_min": 1, "dose_ng_per_day": 100000}]}
    th = therapy.Therapy(rx)  # 20833 nL/h until 00:01, then 2083 nL/h
    d = dosing.Dosing(1000)
    d.tick(th, 5000, 61000)  # 4 s at the first rate, 1 s at the second
    exact_pl = (20833 * 4000 + 2083 * 1000) * 1000 // 3600000
    assert d.programmed_nl == exact_pl // 1000
    # and across midnight: 2 s of the last step, 3 s of the first
    d2 = dosing.Dosing(1000)
    d2.tick(th, 5000, 3000)
    assert d2.programmed_nl == (2083 * 2000 + 20833 * 3000) // 3600000


def test_tick_allocates_nothing():
    rx = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "flex",
          "flex": [{"start_min": 0, "dose_ng_per_day": 1000000}, {"start_min": 600, "dose_ng_per_day": 2000000}],
          "patient_bolus": {"dose_ng": 50000, "duration_min": 1, "lockout_min": 10, "max_per_day": 6}}
    th = therapy.Therapy(rx)
    d = dosing.Dosing(20000)
    th.request_patient_bolus(0)
    lock, unlock = heap_lock_pair()
    tod = 599 * 60000
    total = 0
    lock()
    try:
        i = 0
        while i < 700:
            tod += 100
            s = d.tick(th, 100, tod)
            d.confirm(s)
            total += s
            i += 1
    finally:
        unlock()
    # 70 s: the 5000 nL bolus (1 min) plus basal over the 10:00 step change
    assert th.bolus_kind is None
    # 60 s at 4167 + 10 s at 8333 nL/h = 92.6 nL, delivered in whole 20 nL steps
    assert total == d.delivered_nl // 20 and 5092 - 20 < d.delivered_nl <= 5093


def test_pl_per_step_range():
    raises(therapy.LimitError, dosing.Dosing, 999)
    raises(therapy.LimitError, dosing.Dosing, dosing.PL_PER_STEP_MAX + 1)
    raises(therapy.LimitError, dosing.Dosing, 20000.0)
    d = dosing.Dosing(20000)
    e = raises(therapy.LimitError, d.set_pl_per_step, 0)
    assert e.field == "pl_per_step" and e.limit == dosing.PL_PER_STEP_MIN
    assert d.pl_per_step == 20000
    d.set_pl_per_step(25000)
    assert d.pl_per_step == 25000


def test_calibrate():
    assert dosing.calibrate(200000, 10000) == 20000
    assert dosing.calibrate(200001, 10000) == 20001  # rounded up
    assert dosing.calibrate(210000, 10000, 20000) == 21000
    e = raises(therapy.LimitError, dosing.calibrate, 260000, 10000, 20000)  # +30 %: air or a misread balance
    assert e.field == "measured_nl" and e.limit == dosing.CAL_MAX_CHANGE_PCT
    e = raises(therapy.LimitError, dosing.calibrate, 99999, 10000)
    assert e.field == "measured_nl" and e.limit == dosing.CAL_MIN_NL
    e = raises(therapy.LimitError, dosing.calibrate, 200000, 999)
    assert e.field == "steps"
    e = raises(therapy.LimitError, dosing.calibrate, 2000000, 1000)  # 2 uL per step
    assert e.field == "pl_per_step"
    raises(therapy.LimitError, dosing.calibrate, 200000.0, 10000)
