# Rotor index and roller pulsation (CPython and micropython): dosing paced by the unit's profile once
# the phase is known, exact volume bookkeeping through edges, bad profiles refused whole; in the pump,
# the silent stall (pulses confirmed, no index edge for 5/4 of a pass), bounce edges, a board without
# the pass length.
import struct

import pytest
from test_app import Rig

from fakes import FakePumpBoard, FakeRotor, pump_ticks_locked, raises
from itpump import alarms, dosing, eventlog, occlusion, pulsation, pump
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


def test_the_pump_settles_a_first_edge_into_the_reservoir_and_never_reports_delivered_falling():
    # the first edge 150 steps after boot (4.5 min at 2000 steps/h): the blind steps were phases
    # 50..199 of a 200-step HILO pass, 50 high and 100 low: -200 nL by the estimate, -104 nL proven
    b = magnet_board()
    b.rotor = FakeRotor(b.motor, ROTOR_SPP_MILLI, 150, (0, 9, -5))
    r = rotor_rig(b)
    p, c = r.a.pump, b.clock
    reported = [p.total_nl]
    while not p.dosing.phase_known:
        r.run_ms(100)
        reported.append(p.total_nl)
    d = p.dosing
    assert d.repriced_pl == -104000 and d.reprice_est_pl == -200000
    # the reservoir got the drop back; the count fell below what was reported: carried, not reported
    assert p.account() == 0 and d.delivered_nl < 0
    st = r.read("status")["line"]["rotor"]
    assert st["repriced_pl"] == -104000 and 0 < st["owed_pl"] <= 104000
    n = 0
    while d.owed_pl:  # 104 nL at 1/256 of 40 uL/h: 40 min
        pump_ticks_locked(p, c, 300)  # the owed steps go out in steady ticks: no allocation
        r.run_ms(100)
        reported.append(p.total_nl)
        n += 1
        assert n < 100
    assert all(x <= y for x, y in zip(reported, reported[1:])) and reported[-1] > reported[0]  # never falls
    # the books: what was reported plus what is carried is what the reservoir gave, to the pL
    res = p.reservoir
    assert p.delivered_nl * 1000 + delivered_pl(d) == 20000000 * 1000 - (res._vol_nl * 1000 - res._used_pl)
    assert p.running() and d.over_confirmed == 0
    r.close()


def test_a_first_edge_in_the_tick_allocates_nothing():
    b = magnet_board()
    b.rotor = FakeRotor(b.motor, ROTOR_SPP_MILLI, 150, (0, 9, -5))
    r = rotor_rig(b)
    p, c = r.a.pump, b.clock
    r.run_ms(200000)  # 111 steps: blind
    assert not p.dosing.phase_known
    pump_ticks_locked(p, c, 1500)  # the first edge and its re-pricing, heap locked
    assert p.dosing.phase_known and p.dosing.repriced_pl == -104000
    r.close()


# -- the pump with a rotor index (FakeRotor over the motor's pulses) -------------------------------
RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}  # 40,000 nL/h: 2000 steps/h of 20 nL
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}
ROTOR_SPP_MILLI = 200000  # 200 steps a pass (6 min at 2000 steps/h): the stall limit is 250 steps


def magnet_board(**kw):
    """A board with the index (200-step passes), the +-20 % profile and magnets 0, +9, -5 steps off."""
    return FakePumpBoard(rotor_spp_milli=ROTOR_SPP_MILLI, profile=HILO, magnet_errs=(0, 9, -5), **kw)


def rotor_rig(board=None):
    """Booted, filled and running RX on board (default: the index, evenly placed, flat profile)."""
    r = Rig(board or FakePumpBoard(rotor_spp_milli=ROTOR_SPP_MILLI))
    r.a.boot()
    r.ok("refill", FILL)
    r.ok("program", {"rx": RX})
    return r


def safety_kinds(r):
    out = []
    for c, d in r.events():
        if c == pump.SAFETY:
            out.append(pump.SAFETY_KINDS[struct.unpack(pump.SAFETY_FMT, d)[0]])
    return out


def test_turning_rotor_sets_the_phase_and_never_stops_the_pump():
    r = rotor_rig()
    p = r.a.pump
    r.run_ms(3600000)  # an hour: 2000 steps, 10 passes
    assert p.running() and p.idx.edges == 10 and p.idx.early == 0
    assert p.dosing.phase_known and p.dosing.phase_steps == (r.b.motor.emitted - 10) % 200
    assert "stall" not in safety_kinds(r) and not r.a.alarms.is_active(alarms.STALL)
    st = r.read("status")["line"]["rotor"]
    assert st["edges"] == 10 and st["known"] and st["stall_steps"] == 250
    r.close()


def test_silent_stall_stops_after_five_quarters_of_a_pass_without_an_edge():
    r = rotor_rig()
    p, m, rot = r.a.pump, r.b.motor, r.b.rotor
    r.run_ms(900000)  # past the first edges
    assert p.idx.edges >= 2 and p.running()
    since_edge = p.idx.steps
    rot.stick(True)  # the driver still confirms every pulse: no DIAG
    e0 = m.emitted
    t = 0
    while not p.halt & pump.H_STALL:
        r.run_ms(1000)
        t += 1000
        assert t < 1200000, "no stall alarm"
        if not p.halt:  # not one step beyond the limit before it stops
            assert since_edge + m.emitted - e0 <= 251
    lost = m.emitted - e0
    assert 250 - since_edge <= lost <= 252 - since_edge, (since_edge, lost)
    assert not m.enabled and r.a.alarms.is_active(alarms.STALL)
    assert (eventlog.ALARM_RAISED, bytes([alarms.STALL])) in r.events()
    assert "stall" in safety_kinds(r)
    assert not p.dosing.phase_known  # where the rotor stands is unknown now
    # while halted on it the line model is void: a rise it reads then is no OCCLUSION (relearnt later)
    det = p.line.occ
    det.update = lambda *a: occlusion.OCCLUSION
    det.update_gap = lambda *a: occlusion.OCCLUSION
    r.run_ms(2000)
    assert not r.a.alarms.is_active(alarms.OCCLUSION) and not p.halt & pump.H_OCCLUSION
    del det.update, det.update_gap
    rot.stick(False)
    r.ok("ack", {"code": "STALL"})
    r.run_ms(1000)
    # the steps confirmed while nothing moved are no line history: the detector relearns on resuming
    assert p.running() and not p.line.occ.armed()
    r.run_ms(600000)
    assert p.running() and p.idx.edges >= 3 and p.dosing.phase_known and p.line.occ.armed()
    assert not r.a.alarms.is_active(alarms.OCCLUSION) and not r.a.alarms.is_active(alarms.LEAK)
    r.close()


def test_a_bounce_edge_soon_after_an_edge_is_counted_and_ignored():
    r = rotor_rig()
    p = r.a.pump
    r.run_ms(60000)
    while not (p.idx.edges >= 2 and p.dosing.phase_steps < 50):  # just after an edge
        r.run_ms(10000)
    n, phase = p.idx.edges, p.dosing.phase_steps
    r.b.rotor.bounce()
    r.run_ms(200)
    assert p.idx.edges == n and p.idx.early == 1 and p.dosing.phase_steps >= phase
    r.close()


def test_a_rotor_board_without_the_pass_length_is_refused_by_name():
    b = FakePumpBoard(rotor_spp_milli=ROTOR_SPP_MILLI)
    del b.calibration["steps_per_pass_milli"]
    am = alarms.AlarmManager(b.clock)
    e = raises(ValueError, pump.Pump, b, am, 20000, None, b.calibration)
    assert "steps_per_pass_milli" in str(e)
    b.calibration["steps_per_pass_milli"] = 1000  # below one step per bin
    e = raises(ValueError, pump.Pump, b, am, 20000, None, b.calibration)
    assert "steps_per_pass_milli" in str(e)


def test_the_pump_learns_each_magnets_offset_from_the_gaps_and_leads_the_phase_by_it():
    # three magnets 0, +9 and -5 steps off their nominal angles: mean +4/3, so offsets -1.3, +7.7, -6.3
    b = magnet_board()
    r = rotor_rig(b)  # 0.55 steps/s: every read confirms 0 or 1 step, every edge is pinned
    p, rot = r.a.pump, b.rotor
    seen = []
    last = p.idx.edges
    for _ in range(6 * 3600):  # 6 h: 60 passes
        r.run_ms(1000)
        if p.idx.edges != last:
            last = p.idx.edges
            k = rot._k - 1  # the magnet whose edge this was
            seen.append((k % 3, p.dosing.lead_steps))
    assert len(seen) >= 55 and p.running()
    want = {0: round(0 - 4 / 3), 1: round(9 - 4 / 3), 2: round(-5 - 4 / 3)}
    learnt = seen[3:]  # from the fourth edge on, both gaps ending at this magnet and the one before
    assert all(abs(lead - want[m]) <= 1 for m, lead in learnt), (want, seen[:9])
    assert [lead for _, lead in seen[:2]] == [0, 0]  # nothing known before two gaps
    st = r.read("status")["line"]["rotor"]
    assert st["gaps_known"] == 3 and abs(st["lead_steps"]) <= 9
    # a stall forgets them: the next magnet is unknown
    rot.stick(True)
    while not p.halt & pump.H_STALL:
        r.run_ms(1000)
    assert not any(p.idx.gap_known) and p.dosing.lead_steps == 0
    r.close()


def test_a_lead_prices_the_steps_before_the_mean_pass_start_at_the_pass_end():
    d = dosing.Dosing(PL, HILO, SPP_MILLI)
    d.index_edge(0, -5)  # this magnet is 5 steps early: the pass the profile means starts 5 steps on
    assert d._sum_pl(0, 5) == 5 * 8000 and d._sum_pl(0, 6) == 5 * 8000 + 12000
    d.index_edge(0, 7)  # 7 steps late: the profile's pass began 7 steps ago
    assert d._sum_pl(0, 153) == 153 * 12000 and d._sum_pl(153, 1) == 8000
    d.index_edge(0, 999)  # held within 1/16 of a pass (20 steps here)
    assert d.lead_steps == 20
    th = Rate(36000)
    d.index_edge(0, -5)
    n = 0
    for _ in range(60):  # 600 nL at 10 nL/s: five 8 nL steps first, then 12 nL ones
        s = d.tick(th, 1000, 0)
        d.confirm(s)
        n += s
        assert balance(d) == 0 and -d.max_step_pl < delivered_pl(d) - d.programmed_nl * 1000 <= 0
    assert n == 5 + (600000 - 5 * 8000) // 12000


def test_tick_with_the_rotor_pacing_and_learning_allocates_nothing():
    b = magnet_board()
    r = rotor_rig(b)
    r.run_ms(5000)
    p, c = r.a.pump, b.clock
    e0 = p.idx.edges
    for _ in range(96):  # 40 min: 6+ passes, edges with learning and leads, no allocation
        pump_ticks_locked(p, c, 250)  # 25 s: within the reserve mark's 30-s headroom
        r.run_ms(100)  # the app's housekeeping (checkpoints: the reserve mark) runs unlocked
    assert p.idx.edges >= e0 + 6 and p.running() and p.dosing.lead_steps != 0 and p.reserve_waits < 100
    r.close()


def test_a_catheter_prime_teaches_the_magnets_before_the_basal_starts():
    # 200 uL in 15 min: 80,000 steps/h of 10 nL, 2-3 steps a read: edges pinned within a step
    b = magnet_board(pl_per_step=10000)
    r = rotor_rig(b)
    r.ok("bolus", {"kind": "prime", "duration_min": 15})
    p, rot = r.a.pump, b.rotor
    want = {0: round(0 - 4 / 3), 1: round(9 - 4 / 3), 2: round(-5 - 4 / 3)}
    seen, last = [], p.idx.edges
    while p.therapy.bolus_kind is not None:
        r.run_ms(100)
        if p.idx.edges != last:
            last = p.idx.edges
            seen.append(((rot._k - 1) % 3, p.dosing.lead_steps))
    assert len(seen) >= 95, len(seen)  # 20,000 steps: 100 passes
    assert all(p.idx.gap_known)
    assert all(abs(lead - want[m]) <= 2 for m, lead in seen[4:]), (want, seen[:8])
    r.close()


def _edges_until(r, p, rot, n_edges, seen):
    """Run until n_edges more accepted edges; record (magnet, lead) of each."""
    last, goal = p.idx.edges, p.idx.edges + n_edges
    while p.idx.edges < goal:
        r.run_ms(1000)
        if p.idx.edges != last:
            last = p.idx.edges
            seen.append(((rot._k - 1) % 3, p.dosing.lead_steps))


WANT = {0: round(0 - 4 / 3), 1: round(9 - 4 / 3), 2: round(-5 - 4 / 3)}  # magnets 0, +9, -5 steps off


def test_learnt_magnets_survive_a_restart_and_a_stall_and_are_matched_at_the_first_gap():
    b = magnet_board()
    r = rotor_rig(b)
    p = r.a.pump
    _edges_until(r, p, b.rotor, 6, [])
    gaps = p.idx.gaps()
    assert gaps is not None and len(gaps) == 3
    r.run_ms(700000)  # a checkpoint keeps them
    r.a.log.close()
    # power cycle: a new board object, the rotor where it was (its magnets in the same order)
    b2 = magnet_board()
    r2 = Rig(b2, d=r.dir)
    r2.ctr = r.ctr  # the host's counters go on
    r2.a.boot()
    p2 = r2.a.pump
    assert p2.idx.saved == gaps and not any(p2.idx.gap_known)
    seen = []
    _edges_until(r2, p2, b2.rotor, 4, seen)
    # the first edge sets the phase, the second closes the first pinned gap and names the magnet:
    # from then on every lead is the magnet's own, 2 passes sooner than learning afresh
    assert all(p2.idx.gap_known) and all(abs(lead - WANT[m]) <= 1 for m, lead in seen[1:]), seen
    # a stall forgets which magnet is next, not where the magnets are
    b2.rotor.stick(True)
    while not p2.halt & pump.H_STALL:
        r2.run_ms(1000)
    assert not any(p2.idx.gap_known) and p2.idx.saved is not None
    b2.rotor.stick(False)
    r2.ok("ack", {"code": "STALL"})
    seen = []
    _edges_until(r2, p2, b2.rotor, 4, seen)
    assert all(abs(lead - WANT[m]) <= 1 for m, lead in seen[1:]), seen
    r2.close()


def test_kept_gaps_that_do_not_name_one_magnet_are_learnt_afresh():
    r = Rig(magnet_board())
    r.a.boot()
    idx = r.a.pump.idx
    idx.restore([500, 1000, -1500])  # all within 2.5 steps of each other: no single match
    assert idx.saved == [500, 1000, -1500]
    assert idx._learn(1, 800) == 1 and idx.saved is None and idx.gap_known == [False, True, False]
    idx.restore([0, "x", 0])  # malformed: ignored
    idx.restore([0, 0])  # not one per magnet: ignored
    idx.restore([0, 10 ** 9, 0])  # not a placement: ignored
    assert idx.saved is None
    r.close()
