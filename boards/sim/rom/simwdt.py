# The sim board's hardware watchdog (machine.WDT on rp2: max 8388 ms, cannot be stopped once started).
# Two layers: a virtual-time deadline checked on every clock read, and a real-time budget the host bridge
# watches for a hung interpreter (docs/watchdog.md).
import time

from micropython import const

_MAX_TIMEOUT_MS = const(8388)  # rp2: 24-bit counter at 2 ticks/us (RP2040 datasheet 4.7)
_REAL_FLOOR_MS = const(1000)  # never ask the bridge for less: GC pauses and a loaded host are not hangs
_BEAT_EVERY_MS = const(100)  # real ms between heartbeats to the bridge
_TICKS_MASK = const((1 << 30) - 1)  # the virtual clock's tick period (vclock.TICKS_PERIOD)
_TICKS_HALF = const(1 << 29)


class SimWdt:
    def __init__(self, clock, signal, reset):
        self._clock = clock
        self._signal = signal
        self._reset = reset
        self.timeout_ms = 0
        self._deadline = 0
        self._last_beat = 0

    def start(self, timeout_ms):
        if not 1 <= timeout_ms <= _MAX_TIMEOUT_MS:
            raise ValueError("WDT timeout must be 1..%d ms" % _MAX_TIMEOUT_MS)
        self.timeout_ms = timeout_ms
        self.feed()
        self._clock.wdt = self  # the clock checks the deadline on every read (VClock.ticks_ms)

    def disable(self):
        """Stop the watchdog for service (rp2: clear WATCHDOG_CTRL.ENABLE; machine.WDT cannot)."""
        self.timeout_ms = 0
        self._clock.wdt = None
        self._signal("WDT 0")

    def _real_budget_ms(self):
        return max(_REAL_FLOOR_MS, self._clock.real_ms(self.timeout_ms))

    def feed(self):
        if not self.timeout_ms:
            return
        self._deadline = self._clock.wdt_deadline = self._clock.ticks_add(self._clock.raw_ticks_ms(), self.timeout_ms)
        now = time.ticks_ms()
        if time.ticks_diff(now, self._last_beat) >= _BEAT_EVERY_MS or not self._last_beat:
            self._last_beat = now
            self._signal("WDT %d" % self._real_budget_ms())

    def room_ms(self):
        """Virtual ms left before the deadline (fast-forward jumps stop short of it)."""
        if not self.timeout_ms:
            return 1 << 29
        return self._clock.ticks_diff(self._deadline, self._clock.raw_ticks_ms())

    def check(self, now_ms):
        """Reset if now_ms is past the deadline (VClock.ticks_ms does this inline on every read)."""
        d = (now_ms - self._deadline) & _TICKS_MASK
        if d and d < _TICKS_HALF and self.timeout_ms:
            self._reset("WDT")

    def expired(self):
        if self.timeout_ms:
            self._reset("WDT")
