# Hardware watchdog (machine.WDT). Once started it cannot be stopped, only fed.
# RP2040: the 24-bit LOAD register counts down twice per microsecond (erratum RP2040-E1), so the
# longest timeout is 0xFFFFFF / 2 us = 8388 ms, and machine.WDT raises ValueError above it. The RP2350
# counts once per us (16777 ms in recent ports/rp2/machine_wdt.c, 8388 in older releases), so both
# boards clamp to 8388 ms: valid on every release, and far above our 100 ms control tick anyway.
import machine
from micropython import const

TIMEOUT_MAX_MS = const(8388)
TIMEOUT_MIN_MS = const(1)
# WATCHDOG CTRL is at offset 0 of the block (base per chip: rp2board.CHIP_REGS) with ENABLE at bit 30,
# cleared atomically through the block's clear alias (+0x3000; RP2040 datasheet 2.1.2).
_CLR_ALIAS = const(0x3000)
_CTRL_ENABLE = const(1 << 30)


def clamp_timeout_ms(timeout_ms):
    if timeout_ms < TIMEOUT_MIN_MS:
        return TIMEOUT_MIN_MS
    if timeout_ms > TIMEOUT_MAX_MS:
        return TIMEOUT_MAX_MS
    return timeout_ms


class Watchdog:
    """start(timeout_ms) -> the timeout actually set (clamped); feed()."""

    def __init__(self, watchdog_base):
        self._wdt = None
        self._ctrl_clr = watchdog_base + _CLR_ALIAS
        self.timeout_ms = 0

    def start(self, timeout_ms):
        t = clamp_timeout_ms(timeout_ms)
        self._wdt = machine.WDT(timeout=t)
        self.timeout_ms = t
        return t

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def disable(self):
        """Stop the watchdog for service (the REPL, flashing): machine.WDT has no stop, the register
        does. Only called once delivery is stopped."""
        machine.mem32[self._ctrl_clr] = _CTRL_ENABLE
        self._wdt = None
        self.timeout_ms = 0
