# Fakes for firmware logic tests. Runs under CPython and under the real micropython binary alike,
# so it uses only what both have.

TICKS_PERIOD = 1 << 30  # rp2 ticks_ms period: the fake clock wraps there on purpose
_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD >> 1


class MemCounters:
    """auth counters kept in memory (auth.FileCounters' load/save interface)."""

    def __init__(self):
        self.data = {}

    def load(self):
        return dict(self.data)

    def save(self, d):
        self.data = dict(d)


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


def heap_lock_pair():
    """(lock, unlock): micropython's heap_lock/heap_unlock, where any allocation raises MemoryError;
    under CPython two no-ops (the same loop runs, only its values are checked)."""
    try:
        import micropython
        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        return int, int


def pump_ticks_locked(pump, clock, n, step_ms=100):
    """n pump ticks step_ms apart with the heap locked (the steady-state tick must allocate nothing)."""
    lock, unlock = heap_lock_pair()
    lock()
    try:
        i = 0
        while i < n:
            clock.advance(step_ms)
            pump.tick(clock.ticks_ms())
            i += 1
    finally:
        unlock()


def raises(exc, fn, *args, **kw):
    """Assert fn(*args) raises exc; return the exception (no pytest under micropython)."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc.__name__, getattr(fn, "__name__", fn)))


# -- devices of the board contract (boards/README.md), for the app's delivery tests -------------------
# They allocate nothing per call (fixed slots, small ints), so the app's tick can run under heap_lock.


class FakeMotor:
    """Stepper: pulses timed by the board clock; a move's steps are confirmed when it ends (as the PIO),
    stop() confirms a cut-short move's pulses. extra_per_move: a runaway driver confirming more."""

    MAX_IN_FLIGHT = 2

    def __init__(self, clock):
        self.clock = clock
        self.enabled = False
        self._steps = [0, 0]  # remaining per queued move
        self._period = [0, 0]
        self._done = [0, 0]  # emitted per queued move
        self._n = 0
        self._last = clock.ticks_ms()
        self._phase_us = 0
        self._confirmed = 0
        self.emitted = 0  # every pulse ever (the plant's truth)
        self.moves = 0
        self.extra_per_move = 0
        self.diag = False
        self.enables = 0

    def _sync(self):
        now = self.clock.ticks_ms()
        dt = self.clock.ticks_diff(now, self._last)
        if dt <= 0:
            return
        self._last = now
        if not self._n:
            self._phase_us = 0
            return
        budget = dt * 1000 + self._phase_us
        while self._n:
            k = budget // self._period[0]
            if k > self._steps[0]:
                k = self._steps[0]
            self._steps[0] -= k
            self._done[0] += k
            self.emitted += k
            budget -= k * self._period[0]
            if self._steps[0]:
                break
            self._confirmed += self._done[0] + self.extra_per_move
            self._pop()
        self._phase_us = budget if self._n else 0

    def _pop(self):
        self._steps[0], self._period[0], self._done[0] = self._steps[1], self._period[1], self._done[1]
        self._steps[1] = self._period[1] = self._done[1] = 0
        self._n -= 1

    def enable(self, on):
        if not on:
            self.stop()
        else:
            self.enables += 1
        self.enabled = bool(on)

    def move(self, steps, step_period_us):
        if not self.enabled:
            raise ValueError("motor not enabled")
        if not 0 < steps <= 1 << 20 or not 10 <= step_period_us <= 1000000:
            raise ValueError("bad move %d steps at %d us" % (steps, step_period_us))
        self._sync()
        if self._n >= self.MAX_IN_FLIGHT:
            raise ValueError("motor queue full")
        i = self._n
        self._steps[i] = steps
        self._period[i] = step_period_us & ~1
        self._done[i] = 0
        self._n += 1
        self.moves += 1

    def take_confirmed(self):
        self._sync()
        n = self._confirmed
        self._confirmed = 0
        return n

    def stop(self):
        self._sync()
        if self._n:
            self._confirmed += self._done[0]
        self._n = 0
        self._steps[0] = self._steps[1] = 0
        self._phase_us = 0

    def busy(self):
        self._sync()
        return self._n > 0

    def fault(self):
        return self.diag


class FakePressure:
    """Line pressure over the motor's pulses: base_pa (tip pressure) + an RC line (each emitted step adds
    dp_pa, decaying with tau_ms; the same bilinear model as the detector) + dithered noise (sum of three
    uniforms, sigma ~noise_pa). occluded: nothing drains (each step is a lasting stair); clearing it
    lets the stored volume drain. broken: read_pa raises ValueError (sensor fault). Allocates nothing
    per read (small ints)."""

    def __init__(self, clock=None, motor=None, base_pa=2000, noise_pa=12, dp_pa=33, tau_ms=282):
        self.clock = clock
        self.motor = motor
        self.pa = base_pa
        self.noise_pa = noise_pa
        self.broken = False
        self.occluded = False
        self.frozen = False  # repeat the last reading (a stuck ADC)
        self._x = 0  # line pressure above the tip, Pa x 256
        self._a10 = (2 * tau_ms - 10) * 65536 // (2 * tau_ms + 10)  # decay per 10 ms, Q16
        self._dp = dp_pa << 8
        self._seen = motor.emitted if motor is not None else 0
        self._last = clock.ticks_ms() if clock is not None else 0
        self._rem = 0
        self._s = 12345
        self.last = base_pa
        self.reads = 0

    def _rand(self, a):
        self._s = (self._s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._s >> 8) % (2 * a + 1) - a

    def _decay(self, ms):
        n = ms // 10
        if self.occluded or n <= 0:
            return
        if n > 1000:
            n = 1000
        x = self._x
        while n > 0 and x:
            x = x * self._a10 >> 16
            n -= 1
        self._x = x

    def _sync(self):
        # The pulses since the last read went in over the move that followed the last tick (<= 90 ms):
        # taken as 50 ms before this read, then the line drains.
        ms = 0
        if self.clock is not None:
            now = self.clock.ticks_ms()
            ms = self.clock.ticks_diff(now, self._last) + self._rem
            self._last = now
            if ms < 0:
                ms = 0
            self._rem = ms % 10
            ms -= self._rem
        late = 50 if ms > 50 else ms
        self._decay(ms - late)
        m = self.motor
        if m is not None:
            k = m.emitted - self._seen
            self._seen = m.emitted
            self._x += k * self._dp
        self._decay(late)

    def read_pa(self):
        self.reads += 1
        self._sync()
        if self.broken:
            raise ValueError("ADC out of range")
        if self.frozen:
            return self.last
        a = self.noise_pa
        v = self.pa + (self._x >> 8)
        if a:
            v += self._rand(a) + self._rand(a) + self._rand(a)
        self.last = v
        return v


class FakeBattery:
    def __init__(self):
        self.mv = 4500

    def read_mv(self):
        return self.mv


class FakeBuzzer:
    def __init__(self):
        self.hz = 0

    def tone(self, freq_hz):
        self.hz = freq_hz

    def off(self):
        self.hz = 0


class FakeLed:
    def __init__(self):
        self.on = False

    def value(self, on):
        self.on = bool(on)


class FakeButton:
    def __init__(self):
        self.events = []

    def press(self, long=False):
        self.events.append(2 if long else 1)

    def poll(self):
        return self.events.pop(0) if self.events else 0


class FakeWdt:
    def __init__(self):
        self.timeout_ms = 0
        self.feeds = 0
        self.disabled = False

    def start(self, timeout_ms):
        if not 1 <= timeout_ms <= 8388:
            raise ValueError("WDT timeout must be 1..8388 ms")
        self.timeout_ms = timeout_ms

    def feed(self):
        self.feeds += 1

    def disable(self):
        self.disabled = True


class FakeRotor:
    """Rotor index over the motor's pulses (the plant's truth): an edge each time the turned steps reach
    offset_steps + k * spp_milli // 1000 + errs[k % len(errs)] (k = 0, 1, ...: one magnet per roller,
    errs its placement errors in steps). stick(True): the rotor stands while the driver still emits (a
    silent stall). bounce(): one spurious edge."""

    def __init__(self, motor, spp_milli, offset_steps=0, errs=(0,)):
        self.motor = motor
        self.spp_milli = spp_milli
        self.offset = offset_steps
        self.errs = errs
        self.turned = 0
        self._seen = motor.emitted
        self.stuck = False
        self.extra = 0
        self._k = 0  # edges passed

    def edge_at(self, k):
        return self.offset + k * self.spp_milli // 1000 + self.errs[k % len(self.errs)]

    def _sync(self):
        self.motor.busy()  # brings the motor's pulses up to now
        e = self.motor.emitted
        if not self.stuck:
            self.turned += e - self._seen
        self._seen = e

    def stick(self, on):
        self._sync()
        self.stuck = on

    def bounce(self):
        self.extra += 1

    def edges(self):
        self._sync()
        while self.turned >= self.edge_at(self._k):
            self._k += 1
        return (self._k + self.extra) & 0x3FFFFFFF


class FakePumpBoard(FakeBoard):
    """A board with every device of the contract (like the sim or a Pico, without the plant)."""

    name = "fakepump"

    def __init__(self, cause="PWRON", pl_per_step=20000, uid="fake-0001", rotor_spp_milli=0, profile=None,
                 magnet_errs=(0,)):
        FakeBoard.__init__(self, cause)
        self.motor = FakeMotor(self.clock)
        # a line like the sim's nominal one: 606 nL/kPa, 465 Pa s/uL (tau 282 ms); 20 nL/step = 33 Pa
        self.pressure = FakePressure(self.clock, self.motor, dp_pa=pl_per_step // 606)
        self.battery = FakeBattery()
        self.buzzer = FakeBuzzer()
        self.led = FakeLed()
        self.button = FakeButton()
        self.wdt = FakeWdt()
        self.calibration = {"pl_per_step": pl_per_step, "pressure_offset_pa": 0, "compliance_nl_per_kpa": 606,
                            "resistance_pa_s_per_ul": 465, "noise_pa": 12}
        if rotor_spp_milli:  # a rotor index sensor fitted (boards/README.md), first edge 10 steps in
            self.rotor = FakeRotor(self.motor, rotor_spp_milli, 10, magnet_errs)
            self.calibration["steps_per_pass_milli"] = rotor_spp_milli
            self.calibration["pulsation_ppm"] = profile
        self._uid = uid

    def unique_id(self):
        return self._uid
