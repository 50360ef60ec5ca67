# Push button to GND with the internal pull-up, debounced by polling with ticks (no IRQ: a bouncing
# contact would flood the scheduler). poll() from the control loop returns one event per press.
from micropython import const

NONE = const(0)
SHORT = const(1)  # released before LONG_MS
LONG = const(2)  # held LONG_MS: reported once, while still held; the release then reports nothing
DEBOUNCE_MS = const(30)  # a level must hold this long to count (contact bounce is a few ms)
LONG_MS = const(1500)


class Button:
    """poll() -> NONE, SHORT or LONG. `clock` gives ticks_ms/ticks_diff (the board clock)."""

    def __init__(self, pin, clock, pressed_level=0, debounce_ms=DEBOUNCE_MS, long_ms=LONG_MS):
        self._pin = pin
        self._clock = clock
        self._pressed_level = pressed_level
        self._debounce_ms = debounce_ms
        self._long_ms = long_ms
        now = clock.ticks_ms()
        self._raw = pin.value()
        self._raw_since = now
        self._down = False  # debounced state
        self._down_since = now
        self._long_sent = False
        # A button held at boot must be released first: it reports nothing until then.
        self._armed = self._raw != pressed_level

    def poll(self):
        clock = self._clock
        now = clock.ticks_ms()
        raw = self._pin.value()
        if raw != self._raw:
            self._raw = raw
            self._raw_since = now
            return NONE
        if clock.ticks_diff(now, self._raw_since) < self._debounce_ms:
            return NONE
        down = raw == self._pressed_level
        if down != self._down:
            self._down = down
            if down:
                self._down_since = now
                self._long_sent = False
                return NONE
            was_armed = self._armed
            self._armed = True
            if was_armed and not self._long_sent:
                return SHORT
            return NONE
        if down and self._armed and not self._long_sent and \
                clock.ticks_diff(now, self._down_since) >= self._long_ms:
            self._long_sent = True
            return LONG
        return NONE
