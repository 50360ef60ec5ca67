# Why did the chip (re)start? rp2's machine.reset_cause() knows only PWRON and WDT, and machine.reset()
# reads as WDT, so the board keeps a marker in watchdog SCRATCH0 and the last boot's uptime in SCRATCH1
# to tell HARD, SOFT, WDT and PWRON apart. The decision table: docs/watchdog.md.
import machine
from micropython import const

MAGIC_RUNNING = const(0x1D50B007)
MAGIC_INTENT = const(0x1D5E7A11)
_SOFT_MARGIN_MS = const(200)
_SCRATCH0 = const(0x0C)
_SCRATCH1 = const(0x10)
_TIMERAWH = const(0x24)
_TIMERAWL = const(0x28)
_WDT_RESET = const(3)


def classify(marker, chip_cause, last_boot_ms, uptime_ms):
    """The reset cause string from the marker, machine.reset_cause() and uptimes (pure, for tests)."""
    if marker == MAGIC_INTENT:
        return "HARD"
    if marker == MAGIC_RUNNING and uptime_ms > last_boot_ms + _SOFT_MARGIN_MS:
        return "SOFT"
    return "WDT" if chip_cause == _WDT_RESET else "PWRON"


class ResetCause:
    """Reads and re-arms the marker once at boot; `cause` is the string the board reports."""

    def __init__(self, watchdog_base, timer_base):
        self._wd = watchdog_base
        self._timer = timer_base
        mem = machine.mem32
        marker = mem[self._wd + _SCRATCH0] & 0xFFFFFFFF
        last_boot_ms = mem[self._wd + _SCRATCH1] & 0xFFFFFFFF
        now_ms = self.uptime_ms()
        self.cause = classify(marker, machine.reset_cause(), last_boot_ms, now_ms)
        mem[self._wd + _SCRATCH0] = MAGIC_RUNNING
        mem[self._wd + _SCRATCH1] = now_ms

    def uptime_ms(self):
        """Chip uptime from the raw 64-bit microsecond timer (never wraps in practice), capped to 32 bits."""
        mem = machine.mem32
        while True:  # read high, low, high again: retry if the low word carried in between
            hi = mem[self._timer + _TIMERAWH] & 0xFFFFFFFF
            lo = mem[self._timer + _TIMERAWL] & 0xFFFFFFFF
            if mem[self._timer + _TIMERAWH] & 0xFFFFFFFF == hi:
                break
        return min(((hi << 32) | lo) // 1000, 0xFFFFFFFF)

    def hard_reset(self):
        """Intentional reset: mark it so the next boot reads "HARD", then reboot."""
        machine.mem32[self._wd + _SCRATCH0] = MAGIC_INTENT
        machine.reset()
