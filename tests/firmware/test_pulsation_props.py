"""Properties of roller pulsation (hypothesis, CPython): for any profile, pass length and index edges,
every pL is accounted for, the volume keeps within one step of the programme, and the first edge never
lowers the count of blind steps below their true volume. The examples: test_pulsation.py."""

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_dosing_props import Fixed, pl_per_step, ticks

from itpump import dosing, drugs, pulsation


@st.composite
def profiles(draw):
    """A valid roller profile: 32 bins within +-40 % of the mean, summing to exactly 0."""
    raw = draw(st.lists(st.integers(-200000, 200000), min_size=32, max_size=32))
    mean = sum(raw) // 32
    prof = [x - mean for x in raw]
    prof[31] -= sum(prof)
    return prof


@settings(max_examples=200, deadline=None)
@given(pl=pl_per_step, prof=profiles(), spp_milli=st.integers(pulsation.SPP_MILLI_MIN, 3_000_000),
       pattern=st.lists(st.tuples(ticks, st.integers(0, drugs.MAX_BASAL_NL_PER_H), st.integers(0, 100),
                                  st.integers(-1, 40), st.integers(-400, 400)), min_size=1, max_size=400))
def test_paced_steps_keep_the_volume_within_one_step_for_any_profile_and_edges(pl, prof, spp_milli, pattern):
    """With a profile and index edges at any moments (misplaced magnets, bounce, a stall): every pL is
    accounted for (programmed = delivered + in flight + due + owed, exactly); with the edges read once
    what was asked is confirmed (as the pump reads the sensor), the volume runs ahead of the programme
    only by what a first edge's re-pricing found the blind steps carried beyond the mean and is not yet
    settled (-owed), and lags it by less than one step of the largest volume plus what it found them
    short (owed). Only a first edge (phase unknown before it) re-prices, once."""
    th = Fixed()
    d = dosing.Dosing(pl, prof, spp_milli)
    exact = Fraction(0)
    for ms, basal, confirm_pct, edge, lead in pattern:
        th.basal = basal
        exact += Fraction(basal * ms, 3600)
        d.tick(th, ms, 0)
        assert d._due_pl < d.max_step_pl  # nothing due that would cover a step stays unstepped
        c = d.in_flight * confirm_pct // 100
        d.confirm(c)
        before = d.delivered_nl * 1000 + d._deliv_pl
        if edge >= 0 and not d.in_flight:
            known = d.phase_known
            a = d.index_edge(min(edge, c), lead)
            assert d.delivered_nl * 1000 + d._deliv_pl - before == a  # what the reservoir is told
            assert a == 0 or not known  # later edges re-price nothing
        elif edge == -1 and not d.in_flight:  # a stall halt abandons what is in flight first
            d.forget_phase()
        flight = d._flight_pl()
        delivered = d.delivered_nl * 1000 + d._deliv_pl
        owed = d.owed_pl
        assert d.programmed_nl * 1000 == delivered + flight + d._due_pl + owed  # exact, whatever the phase did
        assert delivered + flight <= d.programmed_nl * 1000 + max(0, -owed)  # ahead: only the unsettled
        assert d.programmed_nl * 1000 <= exact
        # one (largest) step + the nL rounding + what is owed to the programme
        assert exact - (delivered + flight) < d.max_step_pl + 1000 + max(0, owed)
        assert d.delivered_nl_up() * 1000 >= delivered


@settings(max_examples=100, deadline=None)
@given(pl=pl_per_step, prof=profiles(), spp_milli=st.integers(pulsation.SPP_MILLI_MIN, 3_000_000),
       pattern=st.lists(st.tuples(ticks, st.integers(0, drugs.MAX_BASAL_NL_PER_H), st.integers(0, 100),
                                  st.integers(-1, 40), st.integers(-400, 400)), min_size=1, max_size=300))
def test_an_edge_with_steps_in_flight_is_settled_on_the_next_steps(pl, prof, spp_milli, pattern):
    """An edge read while steps are still in flight re-prices them at their new phases: the books stay
    exact and delivery runs ahead of the programme by at most what that re-pricing added."""
    th = Fixed()
    d = dosing.Dosing(pl, prof, spp_milli)
    lo = min(d._vol)
    allowance = 0  # pL the re-pricing of in-flight steps (and of blind steps) may put delivery ahead, summed
    for ms, basal, confirm_pct, edge, lead in pattern:
        th.basal = basal
        d.tick(th, ms, 0)
        c = d.in_flight * confirm_pct // 100
        d.confirm(c)
        if edge >= 0:
            allowance += d.in_flight * (d.max_step_pl - lo)
            allowance += max(0, d.index_edge(min(edge, c), lead))
        elif edge == -1:
            allowance += d.in_flight * (d.max_step_pl - lo)
            d.forget_phase()
        delivered = d.delivered_nl * 1000 + d._deliv_pl
        assert d.programmed_nl * 1000 == delivered + d._flight_pl() + d._due_pl + d.owed_pl
        assert delivered <= d.programmed_nl * 1000 + allowance


def _true_dev(d, q, n):
    """Volume beyond the mean of n steps from profile phase q on, step by step (the passes repeat)."""
    spp = d.spp_milli
    return sum(d._vol[((q + i) * 32 * 1000 // spp) % 32] - d.pl_per_step for i in range(n))


@settings(max_examples=300, deadline=None)
@given(pl=pl_per_step, prof=profiles(), spp_steps=st.integers(32, 2000), frac=st.integers(0, 999),
       blind=st.integers(1, 6000), batch=st.integers(0, 60), lead=st.integers(-400, 400))
def test_a_first_edge_lowers_the_count_of_blind_steps_never_below_their_true_volume(
        pl, prof, spp_steps, frac, blind, batch, lead):
    """The first edge re-prices the steps confirmed blind: what it takes off the count is at most what
    they truly carried less than the mean, wherever the edge fell in its batch and wherever this magnet
    sits (its lead, unknown at a first edge, within 1/16 of a pass); what it adds is the estimate at the
    batch's middle and the lead given. Books stay exact. Checked step by step against the profile."""
    spp = spp_steps * 1000 + frac
    assume(pulsation.SPP_MILLI_MIN <= spp)
    d = dosing.Dosing(pl, prof, spp)
    d.confirm(blind)  # over-confirmed (nothing asked): still counted, blind, at the mean
    assert d.delivered_nl * 1000 + d._deliv_pl == blind * pl
    batch = min(batch, blind)
    a = d.index_edge(batch, lead)
    delivered = d.delivered_nl * 1000 + d._deliv_pl
    assert delivered == blind * pl + a and d.owed_pl == -a and d._due_pl == 0
    if batch * 8000 > spp or not d._reprice_ok:
        assert a == 0
        return
    lim = spp // pulsation.LEAD_MAX_DIV
    r = (blind * 1000 % spp) // 1000  # the steps within the last pass; complete passes are the mean
    wrapped = blind * 1000 >= spp
    p = batch >> 1
    central = _true_dev(d, p - r + d.lead_steps, r)
    if central >= 0:
        assert a == central
    else:
        # every place the arc may truly have: the edge anywhere in its batch, any lead within the limit
        worst = max(_true_dev(d, pt - r + lt, r) for pt in range(batch + 1) for lt in range(-lim, lim + 1))
        if wrapped:
            worst += d._dev_max  # the whole passes end within a step of the arc
        # lowered only where the count stays >= the truth wherever the arc was, and no more cautious
        assert a == min(0, worst) and central <= a <= 0
