# Rotor index sensor: a digital Hall switch facing one magnet per roller gives one rising edge per roller
# pass (docs/hardware.md). A hard IRQ counts the edges, so none is lost to a GC pause or a slow tick;
# the pump reads the count once per tick (board contract `rotor`, boards/README.md).
from micropython import const

EDGE_MASK = const(0x3FFFFFFF)  # the count wraps at 2**30 (itpump.rotor.ROTOR_MASK)


class IndexCounter:
    """Board `rotor`: edges() -> rising edges since boot, wrapping at 2**30.

    `pin` is a machine.Pin made by the board; it is set to an input here, with the internal pull-up
    when `pull_up` (an open-drain switch needs one; a push-pull output does not)."""

    def __init__(self, pin, pull_up=True):
        self._edges = 0
        # A hard handler runs inside the interrupt and must not allocate: the bound method is made
        # once here and kept; each edge calls that object and rebinds one int attribute.
        self._handler = self._edge
        pin.init(pin.IN, pin.PULL_UP if pull_up else None)
        pin.irq(handler=self._handler, trigger=pin.IRQ_RISING, hard=True)
        self._pin = pin

    def _edge(self, pin):
        # Wrap before the increment: n + 1 at n = 2**30 - 1 would be 2**30, a big int (a heap
        # allocation, which raises in a hard IRQ) on the RP2040, whose small ints are 31-bit.
        n = self._edges
        self._edges = n + 1 if n < EDGE_MASK else 0

    def edges(self):
        return self._edges
