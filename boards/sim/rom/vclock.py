# Virtual clock of the sim board: RP2040 tick semantics (2**30 wrap) over a speed factor and a skip.
#
# The unix port's own ticks wrap at 2**62 and would never show a wrap bug, so the sim board hands
# the firmware this clock instead, with the RP2040 period, started 5 minutes before a wrap on purpose.
import time

from micropython import const

if not hasattr(time, "ticks_ms"):  # CPython tests: the unix port's time functions over monotonic()
    time.ticks_ms = lambda: int(time.monotonic() * 1000)
    time.ticks_diff = lambda a, b: a - b

TICKS_PERIOD = const(1 << 30)  # rp2: ticks_ms wraps at 2**30 (~12.4 days)
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
START_MS = const((1 << 30) - 300000)  # first wrap 5 virtual minutes after boot
# A jump stops this far short of the armed watchdog's deadline: the firmware must run its tick and feed
# after the jump (a few ms of real time, more with a flash write or a GC) before the deadline.
WDT_MARGIN_MS = const(300)
# Fast-forward quantum: an idle wait jumps up to this much virtual time at once (the firmware's tick
# then sees a long gap, as after a stall). The app's watchdog (8000 ms, fed every tick) allows jumps of
# 8000 - WDT_MARGIN_MS; dosing.MAX_TICK_MS (8000) delivers such a gap, with 300 ms left for the real
# time around a fast-forward's end (or a tick that came late before its start), which would otherwise
# push a tick gap over it (that time would go undelivered, counted in skipped_ms).
QUANTUM_MAX_MS = const(7700)
DEFAULT_QUANTUM_MS = const(7700)


class VClock:
    def __init__(self, speed=1, start_ms=START_MS, real_ms=None):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._set_ratio(speed)
        # the real clock (ms, never wrapping in practice): the host's, or a test's own so its exact
        # equalities never see a stray millisecond of a loaded machine
        self._real_ms = time.ticks_ms if real_ms is None else real_ms
        self._real0 = self._real_ms()
        self._virt0 = start_ms  # unwrapped virtual ms at _real0 (unix ints are 63-bit)
        self.skip_to = -1  # while >= 0 (unwrapped virtual ms), idling jumps time (fast-forward)
        self.quantum_ms = DEFAULT_QUANTUM_MS  # of the running (or next) fast-forward
        self.wdt = None  # the started watchdog: expired() on every clock read past wdt_deadline; fast-forward
        self.wdt_deadline = 0  # jumps never cross it (simwdt.SimWdt sets both)
        self.jumps = 0  # fast-forward jumps since power-on (sim-side statistics)
        self._woke = -(1 << 40)  # virtual ms at the end of the last jump

    def _set_ratio(self, speed):
        # The speed as an integer ratio: a float multiply on every clock read would allocate (floats
        # are heap objects), in the middle of the firmware's tick.
        self.speed = speed
        if speed == int(speed):
            self._num, self._den = int(speed), 1
        else:
            self._num, self._den = int(speed * 1000 + 0.5) or 1, 1000

    def _virt(self):
        if self.skip_to >= 0:
            return self._virt0  # fast-forward: time moves by jumps only (deterministic, host-independent)
        real = time.ticks_diff(self._real_ms(), self._real0)
        if self._den == 1:
            return self._virt0 + real * self._num
        return self._virt0 + real * self._num // self._den

    def raw_ticks_ms(self):
        if self.skip_to >= 0:
            return self._virt0 & _TICKS_MASK
        return self._virt() & _TICKS_MASK

    def ticks_ms(self):
        # the firmware reads the clock several times a tick: the fast-forward path and the watchdog's
        # deadline check (ticks_diff(now, deadline) > 0) are inlined
        now = (self._virt0 if self.skip_to >= 0 else self._virt()) & _TICKS_MASK
        if self.wdt is not None:
            d = (now - self.wdt_deadline) & _TICKS_MASK
            if d and d < _TICKS_HALF:
                self.wdt.expired()
        return now

    def ticks_diff(self, a, b):
        d = (a - b) & _TICKS_MASK
        return d - TICKS_PERIOD if d >= _TICKS_HALF else d

    def ticks_add(self, a, delta):
        return (a + delta) & _TICKS_MASK

    def elapsed_ms(self):
        """Virtual ms since power-on (unwrapped; sim-side bookkeeping only)."""
        return self._virt() - START_MS

    def set_speed(self, speed):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._anchor()
        self._set_ratio(speed)

    def _anchor(self):
        """Restart the real-time reference from now (virtual time unchanged)."""
        v = self._virt()
        self._real0 = self._real_ms()
        self._virt0 = v

    def advance(self, ms):
        """Jump virtual time forward by ms at once (ends a fast-forward when its target is reached)."""
        self._virt0 += ms
        if self.skip_to >= 0 and self._virt0 >= self.skip_to:
            self.skip_to = -1
            self._real0 = self._real_ms()  # the fast-forward is over: real time runs on from here

    def fast_forward(self, ms, quantum_ms=DEFAULT_QUANTUM_MS):
        """Run the next ms of virtual time as fast as the CPU allows: idle time is skipped, each idle
        wait jumping up to quantum_ms (the firmware ticks then run that far apart; 100 = every tick).
        Meanwhile virtual time stands still between jumps: the firmware's run time costs none of it."""
        if not 1 <= quantum_ms <= QUANTUM_MAX_MS:
            raise ValueError("quantum_ms must be 1..%d" % QUANTUM_MAX_MS)
        self.quantum_ms = quantum_ms
        self._anchor()
        self.skip_to = self._virt0 + ms
        return self.skip_to - START_MS

    def idle(self, ms):
        """Fast-forward an idle wait of ms: jump to the later of ms and the quantum, but never past the
        fast-forward's end nor within WDT_MARGIN_MS of the armed watchdog's deadline (a firmware that
        feeds on every tick must not be reset by the jump alone; one that stopped feeding still is:
        once the room is gone the jump is only the wait asked for)."""
        now = self._virt()
        # The loop's ticks are one jump apart while time stands still between jumps; time that passed
        # otherwise since the last one (the fast-forward just started) counts against the quantum.
        jump = self.quantum_ms - (now - self._woke)
        if jump > ms:
            left = self.skip_to - now
            if jump > left:
                jump = left
            w = self.wdt
            if w is not None:
                room = w.room_ms() - WDT_MARGIN_MS
                if jump > room:
                    jump = room
            if jump < ms:
                jump = ms
        else:
            jump = ms
        self.jumps += 1
        self.advance(jump)
        self._woke = self._virt0

    def skipping(self):
        return self.skip_to >= 0

    def real_ms(self, virt_ms):
        """Real milliseconds to wait for virt_ms of virtual time (0 while skipping)."""
        if self.skip_to >= 0:
            return 0
        return virt_ms * self._den // self._num

    def sleep_ms(self, ms):
        if ms <= 0:
            return
        if self.skip_to >= 0:
            self.advance(ms)  # a sleep is exact (its caller counts on it); only the loop's idle wait jumps
        else:
            time.sleep_ms(self.real_ms(ms))
