# The virtual board's devices (boards/sim/rom/simhw.py) against the board contract (both interpreters).
import sys

import pytest

_rom = __file__.rsplit("/", 3)[0] + "/boards/sim/rom"  # __file__ is absolute under both runners
if _rom not in sys.path:
    sys.path.insert(0, _rom)

import simhw  # noqa: E402
from fakes import FakeClock, raises  # noqa: E402

pytestmark = pytest.mark.micropython


class _Clock(FakeClock):
    def raw_ticks_ms(self):
        return self.now


def make():
    clk = _Clock()
    return clk, simhw.World(clk, None, seed=3)


def test_move_confirms_whole_moves_at_the_period():
    clk, w = make()
    m = w.motor
    assert raises(ValueError, m.move, 10, 1000)  # not enabled
    m.enable(True)
    m.move(10, 1000)  # 10 steps at 1 ms
    m.move(5, 2000)
    assert raises(ValueError, m.move, 1, 1000)  # two in flight: queue full
    clk.advance(9)
    assert m.take_confirmed() == 0 and m.busy()  # 9 of 10 pulses: move not complete
    clk.advance(1)
    assert m.take_confirmed() == 10
    clk.advance(10)
    assert m.take_confirmed() == 5 and not m.busy()
    assert w.plant.steps_in == 15 and w.plant.steps_moved == 15


def test_stop_confirms_the_pulses_already_emitted():
    clk, w = make()
    m = w.motor
    m.enable(True)
    m.move(100, 1000)
    clk.advance(37)
    m.stop()
    assert m.take_confirmed() == 37 and not m.busy()
    clk.advance(1000)
    assert m.take_confirmed() == 0 and w.plant.steps_in == 37


def test_disable_stops_and_forbids_moves():
    clk, w = make()
    m = w.motor
    m.enable(True)
    m.move(50, 500)
    clk.advance(10)
    m.enable(False)
    assert m.take_confirmed() == 20
    assert raises(ValueError, m.move, 1, 500)


def test_argument_ranges_match_the_pio_driver():
    clk, w = make()
    m = w.motor
    m.enable(True)
    assert raises(ValueError, m.move, 0, 1000)
    assert raises(ValueError, m.move, 10, 5)
    assert raises(ValueError, m.move, 10, 2000000)


def test_pumping_raises_pressure_and_an_occlusion_more():
    clk, w = make()
    m = w.motor
    p = simhw.SimPressure(w)
    base = p.read_pa()
    m.enable(True)
    w.plant.inject("occlusion", k=float("inf"))
    m.move(2000, 1000)
    clk.advance(2000)
    assert m.take_confirmed() == 2000
    assert p.read_pa() > base + 20000  # 30 uL into ~0.67 uL/kPa of compliance
    assert w.plant.delivered_ul < 0.5


def test_rotor_index_counts_passes_of_the_turning_rotor_only():
    clk, w = make()
    m = w.motor
    r = simhw.SimRotor(w)
    e0 = r.edges()
    m.enable(True)
    m.move(3200, 100)  # one revolution: three roller passes, three magnets
    clk.advance(320)
    assert m.take_confirmed() == 3200 and r.edges() - e0 == 3
    w.plant.inject("stall", diag=False)  # silent stall: the driver confirms, the rotor stands
    m.move(3200, 100)
    clk.advance(400)
    assert m.take_confirmed() == 3200 and r.edges() - e0 == 3
    assert w.state()["index_edges"] == w.plant.index_edges == 3
    w.plant.index_edges = (1 << 30) + 2
    assert r.edges() == 2  # wraps at 2**30 (board contract)


def test_outputs_and_button():
    clk, w = make()
    simhw.SimBuzzer(w).tone(2000)
    simhw.SimLed(w).value(1)
    b = simhw.SimButton(w)
    assert b.poll() == 0
    w.button_events.append(2)
    assert b.poll() == 2 and b.poll() == 0
    st = w.state()
    assert st["buzzer_hz"] == 2000 and st["led"] is True and simhw.SimBattery(w).read_mv() > 3000


# -- fast-forward: coarse jumps of the virtual clock (vclock.VClock.idle, the serial wait's skip) ------
class _Real:
    """The test's own real clock (ms): it moves only when the test says so."""

    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _ff_clock():
    import simwdt
    import vclock

    c = vclock.VClock(1, real_ms=_Real())
    resets = []
    return c, simwdt.SimWdt(c, lambda msg: None, resets.append), resets


def test_fast_forward_jumps_a_quantum_and_ends_exactly_at_its_target():
    import vclock
    c, _w, _r = _ff_clock()
    t0 = c.elapsed_ms()
    c.fast_forward(12000, 5000)
    c.idle(100)  # the first wait: the time since the last tick is unknown, only the wait is skipped
    assert c.elapsed_ms() - t0 == 100
    c.idle(100)
    assert c.elapsed_ms() - t0 == 5100  # then a quantum; time stands still between jumps: exact
    c.idle(100)
    c.idle(100)  # the last jump is cut at the target
    assert c.elapsed_ms() - t0 == 12000 and not c.skipping()
    assert raises(ValueError, c.fast_forward, 1000, vclock.QUANTUM_MAX_MS + 1)
    c.fast_forward(1000, 100)
    c.idle(30)
    t1 = c.elapsed_ms()
    c.idle(30)
    assert c.elapsed_ms() - t1 == 100  # quantum 100: the fine tick


def test_fast_forward_never_jumps_across_a_fed_watchdog_but_a_starved_one_still_resets():
    c, w, resets = _ff_clock()
    c.fast_forward(3600 * 1000, 5000)
    w.start(4000)
    for _ in range(50):  # a loop that feeds after every jump is never reset, however coarse the jumps
        t = c.elapsed_ms()
        c.idle(100)
        assert 100 <= c.elapsed_ms() - t <= 4000 - 300
        c.ticks_ms()
        w.feed()
    assert resets == []
    fed = c.elapsed_ms()
    while not resets:  # stops feeding: reset at the virtual timeout (to one wait)
        c.idle(100)
        c.ticks_ms()
        assert c.elapsed_ms() - fed <= 4100
    assert resets == ["WDT"] and c.elapsed_ms() - fed > 4000


def _pumped_with_quantum(q_ms, seconds, steps_per_s=20):
    """The firmware's pattern on the sim world, ticks q_ms apart (the fast-forward quantum): each tick
    takes the confirmed steps and moves the steps due since the last tick over 90 ms. No step scatter:
    the volume of a step is then a function of the rotor angle and back pressure only."""
    import vclock

    real = _Real()
    c = vclock.VClock(1, real_ms=real)
    w = simhw.World(c, None, seed=5)
    w.plant.step_scatter = 0
    m = w.motor
    m.enable(True)
    c.fast_forward(seconds * 1000, q_ms)
    confirmed = due = ticks = 0
    last = c.elapsed_ms()
    while c.skipping():
        now = c.elapsed_ms()
        due += (now - last) * steps_per_s
        last = now
        confirmed += m.take_confirmed()
        n = due // 1000
        if n and not m.busy():
            m.move(n, 90000 // n)
            due -= n * 1000
        ticks += 1
        c.idle(100)
    c.advance(200)  # the move in flight ends; then the steps due at the end, so both runs total the same
    due += (c.elapsed_ms() - last) * steps_per_s
    confirmed += m.take_confirmed()
    if due >= 1000:
        m.move(due // 1000, 1000)
    c.advance(5000)  # and the line settles (RC ~0.3 s)
    confirmed += m.take_confirmed()
    w.sync()
    return w.plant, confirmed, ticks


def test_coarse_fast_forward_integrates_the_plant_like_the_fine_tick():
    fine, n_fine, t_fine = _pumped_with_quantum(100, 600)
    coarse, n_coarse, t_coarse = _pumped_with_quantum(5000, 600)
    assert t_fine == 6000 and t_coarse == 1 + 120  # ticks 50x further apart (after a first 100 ms wait)
    assert n_fine == n_coarse == 12000 + 4  # the 200 ms after the end included
    # same steps, same rotor angles: the same volume (to the back-pressure slip, a few ppm here)
    assert abs(coarse.pumped_ul - fine.pumped_ul) < 1e-4 * fine.pumped_ul, (coarse.pumped_ul, fine.pumped_ul)
    for p in (fine, coarse):  # mass balance over long jumps (exact RC solution): pumped = out + stored
        assert abs(p.pumped_ul - p.delivered_ul - p.leaked_ul - p.stored_ul()) < 1e-6 * p.pumped_ul
        # after the fast-forward, virtual time runs with the test's real clock, which stood still
        assert p.t_ms == 605200, p.t_ms
    assert abs(coarse.delivered_ul - fine.delivered_ul) < 1e-3 * fine.delivered_ul
