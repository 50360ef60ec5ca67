"""The stepper's PIO program (firmware/itpump/hal/steppio.py), assembled by the rp2 mock's asm_pio and
run cycle by cycle in the rp2040-pio-emulator: pulse counts, period, width and the pushed count."""

import pytest

from hal_mocks import mocked_hal, step_edges

STEP = 2


@pytest.fixture
def hw():
    with mocked_hal(emulate_pio=True) as hw:
        yield hw


def _sm(hw):
    from itpump.hal import steppio

    sm = hw.rp2.StateMachine(0, steppio.step_program, freq=1_000_000, sideset_base=hw.machine.Pin(STEP))
    sm.active(1)
    return sm


def _rising(edges):
    return [t for level, t in edges if level == 1]


def test_known_encodings_of_the_mock_assembler(hw):
    enc = hw.rp2.asm_pio_encode
    # values from the RP2040 datasheet's encoding tables (and the rp2 stub's own example, 57345)
    assert enc("set(pins, 1)", 0) == 0xE001 == 57345
    assert enc("nop()", 0) == 0xA042
    assert enc("pull(block)", 0) == 0x80A0
    assert enc("pull(noblock)", 0) == 0x8080
    assert enc("push(block)", 0) == 0x8020
    assert enc("push(noblock)", 0) == 0x8000
    assert enc("mov(y, invert(null))", 0) == 0xA04B
    assert enc("in_(y, 24)", 0) == 0x4058
    assert enc("mov(isr, null)", 1) == 0xA0C3
    assert enc("nop().side(1)", 1) == 0xA042 | 1 << 12


def test_program_drives_step_on_every_instruction(hw):
    from itpump.hal import steppio

    opcodes, wrap_target, wrap_top, side_pins, opt, _, _ = hw.rp2.program_info(steppio.step_program)
    assert side_pins == 1 and not opt  # STEP is driven by every instruction, no optional side-set
    assert wrap_target == 1 and wrap_top == len(opcodes) - 1  # the counter init runs once
    assert len(opcodes) <= 32


@pytest.mark.parametrize("steps,period_us", [(1, 10), (5, 20), (12, 50), (3, 1000)])
def test_emits_exactly_steps_pulses_at_the_period(hw, steps, period_us):
    from itpump.hal.stepper import period_loops

    sm = _sm(hw)
    d = period_loops(period_us)
    sm.put(steps)
    sm.put(d)
    sm.run_cycles(steps * period_us + 100)
    edges = step_edges(hw.machine.timeline, STEP)
    rising = _rising(edges)
    falling = [t for level, t in edges if level == 0]
    assert len(rising) == steps and len(falling) == steps
    assert edges[-1][0] == 0  # STEP rests low
    assert all(b - a == 2 * d + 10 == period_us for a, b in zip(rising, rising[1:], strict=False))
    assert all(f - r == d + 5 for r, f in zip(rising, falling, strict=True))
    assert sm.rx_fifo() == 1
    assert sm.get() == (0xFFFFFF - steps)  # the counter counts down from ~0


def test_back_to_back_moves_are_counted_cumulatively(hw):
    sm = _sm(hw)
    for steps in (4, 7):
        sm.put(steps)
        sm.put(0)
    sm.run_cycles(2000)
    assert len(_rising(step_edges(hw.machine.timeline, STEP))) == 11
    assert [sm.get(), sm.get()] == [0xFFFFFF - 4, 0xFFFFFF - 11]


def test_idle_sm_emits_nothing(hw):
    sm = _sm(hw)
    sm.run_cycles(5000)
    assert _rising(step_edges(hw.machine.timeline, STEP)) == []
    assert sm.rx_fifo() == 0


def _driver(hw):
    """The PIO stepper driver on these tests' pins, enabled."""
    from itpump.hal.stepper import PioStepper

    Pin = hw.machine.Pin
    m = PioStepper(0, Pin(STEP), Pin(3), Pin(4), Pin(7), (Pin(5), Pin(6)))
    m.enable(True)
    return m


def test_driver_move_confirms_the_emitted_pulses(hw):
    m = _driver(hw)
    m.move(9, 20)
    assert m.busy() and m.take_confirmed() == 0  # nothing confirmed before the PIO ran
    m._sm.run_cycles(9 * 20 + 50)
    assert m.take_confirmed() == 9
    assert not m.busy()
    assert m.take_confirmed() == 0


def test_stop_mid_move_confirms_every_rising_edge_and_no_more(hw):
    m = _driver(hw)
    m.move(100, 20)
    m.move(50, 20)  # queued behind: must be dropped by stop()
    m._sm.run_cycles(20 * 17)
    while step_edges(hw.machine.timeline, STEP)[-1][0] != 1:  # stop while STEP is high: that edge
        m._sm.run_cycles(1)  # has already moved the rotor and must be counted
    m._sm.run_cycles(2)
    edges = step_edges(hw.machine.timeline, STEP)
    assert edges[-1][0] == 1
    m.stop()
    assert m.take_confirmed() == 18 == len(_rising(edges))
    assert step_edges(hw.machine.timeline, STEP)[-1][0] == 0  # the restart drove STEP low
    m._sm.run_cycles(5000)
    assert len(_rising(step_edges(hw.machine.timeline, STEP))) == 18  # the queued move never ran
    m.move(6, 20)  # and the SM still works, counting from its restart
    m._sm.run_cycles(500)
    assert m.take_confirmed() == 6


def test_stop_when_idle_confirms_nothing(hw):
    m = _driver(hw)
    m.move(3, 20)
    m._sm.run_cycles(200)
    m.stop()
    assert m.take_confirmed() == 3
