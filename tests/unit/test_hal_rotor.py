"""Rotor index sensor on the rp2 boards: hal.rotor.IndexCounter over the machine mock's Pin (a hard IRQ on
rising edges, the pull-up, the 2**30 wrap within 31-bit small ints)."""

import pytest

from hal_mocks import mocked_hal

ROTOR = 16
MASK = (1 << 30) - 1
SMALL_MIN, SMALL_MAX = -(1 << 30), (1 << 30) - 1  # RP2040 small ints (31-bit)


@pytest.fixture
def hw():
    with mocked_hal() as hw:
        yield hw


def _counter(hw, **kw):
    from itpump.hal.rotor import IndexCounter

    return IndexCounter(hw.machine.Pin(ROTOR), **kw)


def _pass(hw, n=1):
    """n magnets pass an active-low switch: low while near, high again as each leaves."""
    for _ in range(n):
        hw.machine.drive(ROTOR, 0)
        hw.machine.drive(ROTOR, 1)


# -- driver ----------------------------------------------------------------------------------------
def test_counts_rising_edges_only_through_a_hard_irq(hw):
    c = _counter(hw)
    Pin, pin = hw.machine.Pin, hw.machine.pins[ROTOR]
    assert (pin.mode, pin.pull) == (Pin.IN, Pin.PULL_UP)
    assert (pin.irq_trigger, pin.irq_hard) == (Pin.IRQ_RISING, True)
    assert pin.irq_handler is c._handler  # the one bound method made in __init__
    assert c.edges() == 0
    _pass(hw, 3)
    assert c.edges() == 3
    hw.machine.drive(ROTOR, 0)  # a magnet arriving (falling edge) is not a pass
    assert c.edges() == 3
    hw.machine.drive(ROTOR, 1)
    assert c.edges() == 4


def test_pull_up_only_when_asked(hw):
    _counter(hw, pull_up=False)
    assert hw.machine.pins[ROTOR].pull is None  # no pull: a push-pull switch drives the line itself


def test_count_wraps_at_2_30_and_the_pump_difference_holds_across_it(hw):
    from itpump.pump import ROTOR_MASK

    c = _counter(hw)
    c._edges = MASK - 1
    _pass(hw)
    assert c.edges() == MASK
    _pass(hw, 2)
    assert c.edges() == 1
    assert (c.edges() - (MASK - 1)) & ROTOR_MASK == 3 and ROTOR_MASK == MASK


class Small31(int):
    """An int that fails where the RP2040 would allocate: arithmetic leaving its 31-bit small-int range."""

    def _op(name):  # builds the methods below (called in the class body)
        def op(self, other):
            r = getattr(int(self), name)(int(other))
            if not SMALL_MIN <= r <= SMALL_MAX:
                raise OverflowError(f"{name} -> {r}: a big int (heap allocation) on the RP2040")
            return Small31(r)
        return op

    __add__ = __radd__ = _op("__add__")
    __sub__ = _op("__sub__")
    __and__ = __rand__ = _op("__and__")


def test_the_irq_handler_stays_within_31_bit_small_ints_at_the_wrap(hw):
    # heap_lock on the unix port (test_hal_no_alloc_micropython) cannot see this: its small ints are 63-bit
    c = _counter(hw)
    c._edges = Small31(MASK - 2)
    _pass(hw, 3)
    assert c.edges() == 0
    _pass(hw)
    assert c.edges() == 1
