"""A recording stand-in for MicroPython's `machine` on rp2, for CPython unit tests of hal/ drivers: outputs
are recorded in `timeline`, inputs come from dicts the test fills. Loaded fresh per test by
tests/hal/hal_mocks.py; never installed globally."""

# every output (pin write, PWM setting, watchdog start/feed, mem32 write, reset) as a tuple, in call
# order: tests assert on sequences
timeline = []
inputs = {}  # GPIO number -> level read by an input Pin
adc_codes = {}  # ADC channel -> iterator of 12-bit codes, or a callable returning one
pins = {}  # GPIO number -> the last Pin made on it

PWRON_RESET = 1
WDT_RESET = 3
RESET_CAUSE = PWRON_RESET  # what reset_cause() returns; tests set it
UNIQUE_ID = bytes(8)  # what unique_id() returns: all zeros, as on the emulated RP2040; tests set it
WDT_TIMEOUT_MAX_MS = 8388  # RP2040 port limit (ports/rp2/machine_wdt.c)


class MockReset(Exception):
    """machine.reset() never returns on a board; here it raises this."""


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4  # rp2 values (ports/rp2/machine_pin.c)
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._out = 0 if value is None else int(bool(value))
        self.irq_handler = None
        self.irq_trigger = 0
        self.irq_hard = False
        pins[id] = self
        timeline.append(("pin.init", id, mode, pull, value))

    def init(self, mode=-1, pull=-1, *, value=None):
        """Reconfigure; pull None means no pull resistor (as on the port)."""
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self._out = int(bool(value))
        timeline.append(("pin.init", self.id, mode, pull, value))

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self.irq_handler = handler
        self.irq_trigger = trigger
        self.irq_hard = hard
        timeline.append(("pin.irq", self.id, trigger, hard))

    def value(self, v=None):
        if v is None:
            if self.mode == Pin.OUT:
                return self._out
            return inputs.get(self.id, 1 if self.pull == Pin.PULL_UP else 0)
        self._out = int(bool(v))
        timeline.append(("pin", self.id, self._out))
        return None

    def __call__(self, v=None):
        return self.value(v)


def drive(gpio, level):
    """The outside world sets input `gpio` to `level`: an edge the pin's irq() trigger selects calls its
    handler with the pin (immediately, as a hard IRQ would)."""
    pin = pins.get(gpio)
    before = pin.value() if pin is not None else inputs.get(gpio, 0)
    inputs[gpio] = level
    if pin is None or pin.irq_handler is None or level == before:
        return
    if pin.irq_trigger & (Pin.IRQ_RISING if level else Pin.IRQ_FALLING):
        pin.irq_handler(pin)


class ADC:
    def __init__(self, pin):
        gpio = pin.id if isinstance(pin, Pin) else pin
        self.channel = gpio - 26 if gpio >= 26 else gpio
        timeline.append(("adc.init", self.channel))

    def read_u16(self):
        src = adc_codes[self.channel]
        code = src() if callable(src) else next(src)
        if not 0 <= code <= 4095:
            raise AssertionError(f"mock ADC code {code} is not 12-bit")
        return (code << 4) | (code >> 8)  # how the rp2 port scales its 12-bit result


class PWM:
    def __init__(self, pin, **kw):
        self.pin = pin.id
        self._freq = 0
        self._duty = 0
        timeline.append(("pwm.init", self.pin))

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f
        timeline.append(("pwm.freq", self.pin, f))
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        timeline.append(("pwm.duty", self.pin, d))
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout > WDT_TIMEOUT_MAX_MS:
            raise ValueError(f"timeout exceeds {WDT_TIMEOUT_MAX_MS}")
        timeline.append(("wdt.start", timeout))

    def feed(self):
        timeline.append(("wdt.feed",))


class _Mem32:
    def __init__(self):
        self.words = {}

    def __getitem__(self, addr):
        return self.words.get(addr, 0)

    def __setitem__(self, addr, value):
        self.words[addr] = value & 0xFFFFFFFF
        timeline.append(("mem32", addr, value & 0xFFFFFFFF))


mem32 = _Mem32()


def reset_cause():
    return RESET_CAUSE


def unique_id():
    return UNIQUE_ID


def reset():
    timeline.append(("machine.reset",))
    raise MockReset()
