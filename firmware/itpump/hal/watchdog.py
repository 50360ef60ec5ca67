# Hardware watchdog (machine.WDT). Once started it cannot be stopped, only fed.
# RP2040: the 24-bit LOAD register counts down twice per microsecond (erratum RP2040-E1), so the
# longest timeout is 0xFFFFFF / 2 us = 8388 ms, and machine.WDT raises ValueError above it. The RP2350
# counts once per us (16777 ms in recent ports/rp2/machine_wdt.c, 8388 in older releases), so both
# boards clamp to 8388 ms: valid on every release, and far above our 100 ms control tick anyway.
import machine

try:
    from micropython import const
except ImportError:  # CPython unit tests
    def const(x):
        return x

TIMEOUT_MAX_MS = const(8388)
TIMEOUT_MIN_MS = const(1)


def clamp_timeout_ms(timeout_ms):
    if timeout_ms < TIMEOUT_MIN_MS:
        return TIMEOUT_MIN_MS
    if timeout_ms > TIMEOUT_MAX_MS:
        return TIMEOUT_MAX_MS
    return timeout_ms


class Watchdog:
    """start(timeout_ms) -> the timeout actually set (clamped); feed()."""

    def __init__(self):
        self._wdt = None
        self.timeout_ms = 0

    def start(self, timeout_ms):
        t = clamp_timeout_ms(timeout_ms)
        self._wdt = machine.WDT(timeout=t)
        self.timeout_ms = t
        return t

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()
