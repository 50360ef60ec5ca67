# Fakes for firmware logic tests. Runs under CPython and under the real micropython binary alike,
# so it uses only what both have.

TICKS_PERIOD = 1 << 30  # rp2 ticks_ms period: the fake clock wraps there on purpose
_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD >> 1


class FakeClock:
    """Manual clock with RP2040 tick semantics. Starts just before a wrap unless told otherwise."""

    def __init__(self, start_ms=TICKS_PERIOD - 1000):
        self.now = start_ms & _MASK

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        d = (a - b) & _MASK
        return d - TICKS_PERIOD if d >= _HALF else d

    def ticks_add(self, a, delta):
        return (a + delta) & _MASK

    def sleep_ms(self, ms):
        self.advance(ms)

    def advance(self, ms):
        self.now = (self.now + ms) & _MASK


class FakeSerial:
    """Bytes in, bytes out. readchar() honours Ctrl-C like the boards' serial drivers."""

    def __init__(self, clock=None):
        self.clock = clock
        self.rx = bytearray()
        self.tx = bytearray()
        self.interrupt_enabled = True

    def feed(self, data):
        self.rx += data

    def readchar(self):
        if not self.rx:
            return -1
        c = self.rx[0]
        self.rx = self.rx[1:]
        if c == 3 and self.interrupt_enabled:
            raise KeyboardInterrupt
        return c

    def wait(self, timeout_ms):
        if self.clock is not None and not self.rx and timeout_ms > 0:
            self.clock.advance(timeout_ms)

    def write(self, data):
        self.tx += data

    def lines(self):
        """Complete lines written so far (consumed)."""
        out = []
        while True:
            i = self.tx.find(b"\n")
            if i < 0:
                return out
            out.append(bytes(self.tx[:i]))
            self.tx = self.tx[i + 1:]


class FakeBoard:
    name = "fake"

    def __init__(self, cause="PWRON"):
        self.clock = FakeClock()
        self.serial = FakeSerial(self.clock)
        self._cause = cause
        self.repl_locked = False

    def reset_cause(self):
        return self._cause

    def set_repl_lock(self, locked):
        self.repl_locked = locked
        self.serial.interrupt_enabled = not locked


def raises(exc, fn, *args, **kw):
    """Assert fn(*args) raises exc; return the exception (no pytest under micropython)."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc.__name__, getattr(fn, "__name__", fn)))
