# The rotor index in the pump (rotor.py, CPython and micropython): the phase from the index, each
# magnet's placement learnt and kept, the silent stall (pulses confirmed, no index edge for 5/4 of a
# pass), bounce edges, a board without the pass length; the first edge's re-pricing settled into the
# reservoir. Pulsation itself: test_pulsation.py.
import struct

import pytest
from test_app import Rig
from test_pulsation import HILO, PL, SPP_MILLI, Rate, balance, delivered_pl

from fakes import FakePumpBoard, FakeRotor, pump_ticks_locked, raises
from itpump import alarms, dosing, eventlog, halts, occlusion, pump

pytestmark = pytest.mark.micropython

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
        if c == eventlog.SAFETY:
            out.append(eventlog.SAFETY_KINDS[struct.unpack(eventlog.CODES[c][1], d)[0]])
    return out


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
    while not p.halt & halts.H_STALL:
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
    assert not r.a.alarms.is_active(alarms.OCCLUSION) and not p.halt & halts.H_OCCLUSION
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
    while not p.halt & halts.H_STALL:
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
    while not p2.halt & halts.H_STALL:
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
