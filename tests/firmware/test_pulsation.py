# Roller pulsation (pulsation.py, through dosing.Dosing): dosing paced by the unit's profile once the
# phase is known, exact volume bookkeeping through edges, blind steps re-priced at the first edge, bad
# profiles refused whole (CPython and micropython). In the pump: test_rotor.py; properties:
# test_pulsation_props.py.
import pytest

from fakes import raises
from itpump import dosing, pulsation
from itpump.therapy import LimitError

pytestmark = pytest.mark.micropython

# A two-level profile: the first half of each pass carries +20 %, the second -20 % (mean 0)
HILO = [200000] * 16 + [-200000] * 16
PL = 10000  # 10 nL per step: 12 nL in the first half of a pass, 8 nL in the second
SPP_MILLI = 320000  # 320 steps per pass: 10 per bin


class Rate:
    """Constant basal, no bolus (a therapy stand-in)."""

    seg_end_ms = 86400000
    bolus_left_nl = 0

    def __init__(self, nl_per_h):
        self.rate = nl_per_h

    def basal_nl_per_h(self, tod_ms):
        return self.rate

    def bolus_nl_per_h(self):
        return 0

    def programmed(self, basal_nl, bolus_nl):
        pass

    def update(self, tod_ms):
        pass


def delivered_pl(d):
    return d.delivered_nl * 1000 + d._deliv_pl


def balance(d):
    """programmed = delivered + in flight + due + owed, exact in pL (the module's invariant)."""
    return d.programmed_nl * 1000 - delivered_pl(d) - d._flight_pl() - d._due_pl - d.owed_pl


def test_profile_is_validated_whole_and_a_bad_one_changes_nothing():
    assert pulsation.check_profile(HILO, SPP_MILLI) == tuple(HILO)
    bad = [
        (HILO[:31], "pulsation_ppm"),  # 31 bins
        (HILO[:31] + [1.5], "pulsation_ppm[31]"),  # not an int
        (HILO[:31] + [600000], "pulsation_ppm[31]"),  # beyond +-50 %
        ([40000] * 32, "pulsation_ppm"),  # mean +4 %: the bins must average to pl_per_step
    ]
    for prof, field in bad:
        e = raises(LimitError, pulsation.check_profile, prof, SPP_MILLI)
        assert e.field == field, (field, e.field)
    assert raises(LimitError, pulsation.check_profile, HILO, 31999).field == "steps_per_pass_milli"
    assert raises(LimitError, pulsation.check_profile, HILO, 320000.0).field == "steps_per_pass_milli"
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    vol = list(d._vol)
    raises(LimitError, d.set_profile, [0] * 31, SPP_MILLI)
    assert d.profile_ppm == tuple(HILO) and list(d._vol) == vol and d.spp_milli == SPP_MILLI
    assert d._vol[0] == 12000 and d._vol[31] == 8000 and d.max_step_pl == 12000
    # the guard's room: a run of steps over the high half carries 160 x 2 nL beyond the mean
    assert d.pass_excess_pl == 160 * 2000


def test_unknown_phase_steps_the_mean_volume():
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    assert not d.phase_known
    th = Rate(36000)  # 10 nL/s: one mean step per second
    n = 0
    for _ in range(100):
        s = d.tick(th, 1000, 0)
        d.confirm(s)
        n += s
    assert n == 100 and delivered_pl(d) == 100 * PL and balance(d) == 0


def test_known_phase_paces_each_step_by_its_volume_and_follows_the_programme():
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    th = Rate(36000)  # 10 nL/s
    d.index_edge(0)  # the pass starts here
    turned = 0  # the true rotor: steps since this edge
    times = []  # tick at which each step went out
    for t in range(1, 3 * 3200 + 1):  # three passes of 3.2 uL, 100 ms ticks
        s = d.tick(th, 100, 0)
        d.confirm(s)
        for _ in range(s):
            times.append(t)
        old = turned
        turned += s
        if old // 320 != turned // 320:  # the rotor reached the next pass start
            d.index_edge(turned % 320)
        assert balance(d) == 0
        # volume, not step count, follows the programme: behind by less than one step, never ahead
        ahead = delivered_pl(d) - d.programmed_nl * 1000
        assert -d.max_step_pl < ahead <= 0, (t, ahead)
    assert d.index_edges == 4 and d.phase_steps == turned % 320
    # within a pass the 12 nL steps come 1.2 s apart and the 8 nL steps 0.8 s apart (100 ms ticks)
    high = times[160] - times[0]
    low = times[320] - times[160]
    assert 1900 <= high <= 1930 and 1270 <= low <= 1290, (high, low)
    # over whole passes the mean holds: 3 passes of 320 steps carry 3 x 3.2 uL
    assert len(times) in (959, 960)


def test_an_edge_while_steps_are_in_flight_reprices_them_without_losing_a_pl():
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    th = Rate(360000)
    d.index_edge(0)
    for _ in range(200):  # 100 nL/s, steps handed out but never confirmed
        d.tick(th, 100, 0)
    assert d.in_flight > 50 and balance(d) == 0
    d.confirm(40)
    d.index_edge(5)  # an early edge: the pass restarts, the rest in flight moves to other bins
    assert balance(d) == 0 and d.phase_steps == 0
    d.confirm(d.in_flight)
    assert balance(d) == 0
    d.forget_phase()
    assert not d.phase_known and balance(d) == 0


def test_calibration_change_keeps_the_balance_with_steps_in_flight():
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    d.index_edge(0)
    for _ in range(10):
        d.tick(Rate(360000), 100, 0)
    d.set_pl_per_step(11000)
    assert balance(d) == 0 and d._vol[0] == 13200 and d._vol[31] == 8800
    d.set_profile(None, SPP_MILLI)  # flat: every bin the mean
    assert balance(d) == 0 and d._vol[0] == d._vol[31] == 11000


# -- the first edge re-prices the steps confirmed blind ---------------------------------------------
LOHI = HILO[16:] + HILO[:16]  # -20 % in the first half of each pass, +20 % in the second


def blind_then_edge(prof, blind, batch=0, lead=0):
    """A Dosing that confirmed `blind` steps with the phase unknown, then saw its first edge."""
    d = dosing.Dosing(PL, prof, SPP_MILLI)
    run_steps(d, blind)
    assert delivered_pl(d) == blind * PL and balance(d) == 0
    a = d.index_edge(batch, lead)
    return d, a


def run_steps(d, n):
    """Tick 10 nL/s a second at a time, confirming all, until n steps went out (exactly n while blind:
    a mean step a second)."""
    th = Rate(36000)
    k = 0
    while k < n:
        s = d.tick(th, 1000, 0)
        d.confirm(s)
        k += s
    assert d.in_flight == 0


def test_first_edge_adds_what_the_blind_steps_carried_beyond_the_mean_and_settles_it_slowly():
    # 100 blind steps, the edge at the end of the last read: they were phases 220..319 of the pass
    # before, the high half of LOHI, 12 nL each: 100 x 2 nL more than counted
    d, a = blind_then_edge(LOHI, 100)
    assert a == 200000 and d.repriced_pl == d.reprice_est_pl == 200000
    assert delivered_pl(d) == 100 * PL + 200000 and d.owed_pl == -200000 and balance(d) == 0
    # the programme takes it back at most 1/256 of its flow: 10 nL/s gives 40 pL of 10000 a tick
    th = Rate(36000)
    t = 0
    while d.owed_pl:
        s = d.tick(th, 1000, 0)
        d.confirm(s)
        t += 1
        assert balance(d) == 0 and t < 10000
        # ahead of the programme only by what is not settled yet
        assert delivered_pl(d) - d.programmed_nl * 1000 <= -d.owed_pl
    assert t == 200000 // 40 == 5000
    # settled: delivered follows the programme within a step again
    assert -d.max_step_pl < delivered_pl(d) - d.programmed_nl * 1000 <= 0


def test_first_edge_lowers_the_count_only_by_what_holds_wherever_the_edge_and_the_magnet_were():
    # HILO: the same 100 blind steps carried 8 nL each, 200 nL less than counted. But the magnet may
    # sit up to 1/16 of a pass (20 steps) off the profile's pass start, unknown at a first edge: the
    # arc may have been phases 240..339, 60 + 20 x 12 nL... = -200 + 80 nL: only -120 nL is proven
    d, a = blind_then_edge(HILO, 100)
    assert d.reprice_est_pl == -200000 and a == -120000 == d.repriced_pl
    assert delivered_pl(d) == 100 * PL - 120000 and d.owed_pl == 120000 and balance(d) == 0
    # the edge in a read of 6 steps: 3 after it (estimate -188 nL), +-3 steps more doubt: -96 nL
    d, a = blind_then_edge(HILO, 100, 6)
    assert d.reprice_est_pl == -97 * 2000 + 3 * 2000 and a == -74 * 2000 + 26 * 2000
    # a lead given at a first edge moves the estimate, not the doubt (the lead is not learnt yet)
    d, a = blind_then_edge(HILO, 100, 0, 10)
    assert d.reprice_est_pl == -90 * 2000 + 10 * 2000 and a == -120000
    # a whole pass and 100 steps: the pass is the mean, within a step where it is split from the arc
    d, a = blind_then_edge(HILO, 420)
    assert d.reprice_est_pl == -200000 and a == -120000 + 2000
    # 30 steps: -60 nL by the estimate, but 20 steps later they would have been +20 nL: nothing proven
    d, a = blind_then_edge(HILO, 30)
    assert d.reprice_est_pl == -60000 and a == 0 and delivered_pl(d) == 30 * PL and d.owed_pl == 0
    # an edge somewhere in a read of more than 1/8 of a pass: left alone
    d, a = blind_then_edge(HILO, 100, 41)
    assert a == 0 and delivered_pl(d) == 100 * PL
    # the owed volume is stepped out over the next ticks, at most 1/256 of the flow more
    d, a = blind_then_edge(HILO, 100)
    th = Rate(36000)
    for _ in range(3000):  # 120 nL at 40 pL a second
        d.confirm(d.tick(th, 1000, 0))
        assert balance(d) == 0
    assert d.owed_pl == 0 and -d.max_step_pl < delivered_pl(d) - d.programmed_nl * 1000 <= 0


def test_only_the_first_edge_reprices_and_a_lost_phase_counts_afresh():
    d, a = blind_then_edge(LOHI, 100)
    assert a == 200000
    run_steps(d, 100)  # known phase: priced as they go
    assert d.index_edge(0) == 0 and d.repriced_pl == 200000 and balance(d) == 0
    d.forget_phase()  # a stall: blind again
    run_steps(d, 50)
    d.forget_phase()  # another stall before an edge: those 50 may not have turned the rotor
    run_steps(d, 100)
    owed = d.owed_pl
    assert d.index_edge(0) == 200000 and d.owed_pl == owed - 200000 and balance(d) == 0
    assert d.index_edge(0) == 0
