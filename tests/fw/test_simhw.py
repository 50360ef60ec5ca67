# The virtual board's devices (boards/sim/rom/simhw.py) against the board contract (both interpreters).
import sys

_rom = __file__.rsplit("/", 3)[0] + "/boards/sim/rom" if "/" in __file__ else "../../boards/sim/rom"
if _rom not in sys.path:
    sys.path.insert(0, _rom)

import simhw  # noqa: E402
from fakes import FakeClock, raises  # noqa: E402


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
