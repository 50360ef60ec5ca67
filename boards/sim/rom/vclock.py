# Virtual clock of the sim board: RP2040 tick semantics (2**30 wrap) over a speed factor and a skip.
#
# The unix port's own ticks wrap at 2**62 and would never show a wrap bug, so the sim board hands
# the firmware this clock instead, with the RP2040 period, started 5 minutes before a wrap on purpose.
import time

from micropython import const

TICKS_PERIOD = const(1 << 30)  # rp2: ticks_ms wraps at 2**30 (~12.4 days)
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
START_MS = const((1 << 30) - 300000)  # first wrap 5 virtual minutes after boot


class VClock:
    def __init__(self, speed=1, start_ms=START_MS):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._real0 = time.ticks_ms()  # unix ticks: never wrap in practice
        self._virt0 = start_ms  # unwrapped virtual ms at _real0 (unix ints are 63-bit)
        self.skip_to = -1  # while >= 0 (unwrapped virtual ms), idling jumps time (fast-forward)
        self.watch = None  # the watchdog's check(now_ms), run on every clock read once started

    def _virt(self):
        real = time.ticks_diff(time.ticks_ms(), self._real0)
        return self._virt0 + int(real * self.speed)

    def raw_ticks_ms(self):
        return self._virt() & _TICKS_MASK

    def ticks_ms(self):
        now = self._virt() & _TICKS_MASK
        if self.watch is not None:
            self.watch(now)
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
        now_real = time.ticks_ms()
        self._virt0 += int(time.ticks_diff(now_real, self._real0) * self.speed)
        self._real0 = now_real
        self.speed = speed

    def advance(self, ms):
        """Jump virtual time forward by ms at once (ends a fast-forward when its target is reached)."""
        self._virt0 += ms
        if self.skip_to >= 0 and self._virt() >= self.skip_to:
            self.skip_to = -1

    def fast_forward(self, ms):
        """Run the next ms of virtual time as fast as the CPU allows: idle time is skipped."""
        self.skip_to = self._virt() + ms
        return self.skip_to - START_MS

    def skipping(self):
        return self.skip_to >= 0

    def real_ms(self, virt_ms):
        """Real milliseconds to wait for virt_ms of virtual time (0 while skipping)."""
        if self.skip_to >= 0:
            return 0
        return int(virt_ms / self.speed)

    def sleep_ms(self, ms):
        if ms <= 0:
            return
        if self.skip_to >= 0:
            self.advance(ms)
        else:
            time.sleep_ms(self.real_ms(ms))
