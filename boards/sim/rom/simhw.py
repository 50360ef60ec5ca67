# The sim board's devices over the plant model: stepper driver, pressure sensor, rotor, battery, buzzer,
# LED, button, honouring the board object contract (boards/README.md) as the rp2 hal/ drivers do.
# World.sync brings the plant up to the virtual clock before every device access (docs/sim.md).
import json

from micropython import const

import plant as plantmod

try:
    from time import ticks_diff as _real_diff
    from time import ticks_ms as _real_ms
except ImportError:  # CPython: a monotonic ms counter is all that is needed
    import time as _time

    def _real_ms():
        return int(_time.monotonic() * 1000)

    def _real_diff(a, b):
        return a - b

PERIOD_MIN_US = const(10)  # same limits as the PIO driver (hal/stepper.py)
PERIOD_MAX_US = const(1000000)
MAX_MOVE_STEPS = const(1 << 20)
MAX_IN_FLIGHT = const(2)
_SAVE_EVERY_MS = const(60000)  # virtual ms between plant snapshots (the world outlives an MCU reset)
# ...and at least this many real ms: a reset saves first anyway, the periodic snapshot only covers a
# board killed by the host (the bridge's real-time watchdog), so a fast-forward need not write 1440 a day.
_SAVE_REAL_MS = const(2000)

# Plant state that survives a reset of the board (the fluid does not forget what it did).
_PERSIST = ("p", "reservoir", "soc", "pumped_ul", "delivered_ul", "leaked_ul", "t_ms", "rotor_step",
            "steps_in", "steps_moved", "extra_ma", "index_edges")
_EDGE_MASK = const(0x3FFFFFFF)  # the rotor's edge count wraps at 2**30 (board contract)


class World:
    def __init__(self, clock, snapshot_file, seed):
        self.clock = clock
        self.plant = plantmod.Plant(seed=seed)
        self._file = snapshot_file
        self._restore()
        self._last = clock.raw_ticks_ms()
        self._ff = hasattr(clock, "skip_to")  # the sim's VClock (time frozen between fast-forward jumps)
        self._seen = -1
        self._since_save = 0
        self._saved_real = _real_ms()
        self.motor = SimMotor(self)
        self.buzzer_hz = 0
        self.led = False
        self.button_events = []

    def sync(self):
        c = self.clock
        if self._ff and c.skip_to >= 0 and c._virt0 == self._seen:
            return  # fast-forward, no jump since the last sync: nothing to integrate (the common case)
        now = c.raw_ticks_ms()
        dt = self.clock.ticks_diff(now, self._last)
        if dt <= 0:
            return
        self._last = now
        if self._ff:
            self._seen = c._virt0
        pulses = self.motor.emit(dt)
        self.plant.step(dt, pulses)
        self._since_save += dt
        if self._since_save >= _SAVE_EVERY_MS and _real_diff(_real_ms(), self._saved_real) >= _SAVE_REAL_MS:
            self.save()

    # -- persistence across board resets ----------------------------------------------------------
    def save(self):
        self._since_save = 0
        self._saved_real = _real_ms()
        if self._file is None:
            return
        p = self.plant
        d = {k: getattr(p, k) for k in _PERSIST}
        faults = {}
        for f in p.faults:
            kw = dict(p.faults[f])
            if kw.get("k") == float("inf"):
                kw["k"] = None  # JSON has no infinity; restored as a full occlusion
            faults[f] = kw
        d["faults"] = faults
        data = json.dumps(d)
        self._file.seek(0)
        self._file.write(data + " " * 64)  # pad over a longer previous snapshot; json.loads ignores it
        # no flush (fsync on the unix port): the write is in the host's page cache, which outlives a kill

    def _restore(self):
        if self._file is None:
            return
        self._file.seek(0)
        text = self._file.read().strip()
        if not text:
            return
        try:
            d = json.loads(text)
        except ValueError:
            return  # torn snapshot: start from a fresh plant rather than a wrong one
        p = self.plant
        for k in _PERSIST:
            if k in d:
                setattr(p, k, d[k])
        faults = d.get("faults", {})
        for f in faults:
            if faults[f].get("k") is None and f == "occlusion":
                faults[f]["k"] = float("inf")  # json has no infinity
        p.set_faults(faults)

    def state(self):
        self.sync()
        p = self.plant
        return {
            "pressure_pa_true": int(p.true_pressure_pa()),
            "delivered_ul": p.delivered_ul, "pumped_ul": p.pumped_ul, "leaked_ul": p.leaked_ul,
            "stored_ul": p.stored_ul(), "reservoir_ul": p.reservoir_ul(), "battery_mv": p.battery_mv(),
            "steps_in": p.steps_in, "steps_moved": p.steps_moved, "index_edges": p.index_edges,
            "faults": list(p.faults),
            "motor_enabled": self.motor.enabled, "motor_busy": bool(self.motor.queue),
            "buzzer_hz": self.buzzer_hz, "led": self.led, "t_ms": p.t_ms,
        }


class SimMotor:
    """Stepper driver: pulses timed by the virtual clock, confirmed per completed move (as the PIO)."""

    def __init__(self, world):
        self._w = world
        self.enabled = False
        self.queue = []  # [remaining, period_us, emitted]
        self._phase_us = 0
        self._confirmed = 0

    def emit(self, dt_ms):
        """Pulses emitted during the next dt_ms of virtual time."""
        if not self.queue:
            self._phase_us = 0
            return 0
        budget = dt_ms * 1000 + self._phase_us
        total = 0
        q = self.queue
        while q:
            head = q[0]
            n = budget // head[1]
            if n > head[0]:
                n = head[0]
            head[0] -= n
            head[2] += n
            budget -= n * head[1]
            total += n
            if head[0]:
                break
            self._confirmed += head[2]
            q.pop(0)
        self._phase_us = budget if q else 0
        return total

    def enable(self, on):
        if not on:
            self.stop()
        self.enabled = bool(on)

    def move(self, steps, step_period_us):
        if not self.enabled:
            raise ValueError("motor not enabled")
        if not 0 < steps <= MAX_MOVE_STEPS:
            raise ValueError("steps %d out of 1..%d" % (steps, MAX_MOVE_STEPS))
        if not PERIOD_MIN_US <= step_period_us <= PERIOD_MAX_US:
            raise ValueError("step_period_us %d out of %d..%d" % (step_period_us, PERIOD_MIN_US, PERIOD_MAX_US))
        self._w.sync()
        if len(self.queue) >= MAX_IN_FLIGHT:
            raise ValueError("motor queue full (%d moves in flight)" % MAX_IN_FLIGHT)
        self.queue.append([steps, step_period_us, 0])

    def take_confirmed(self):
        self._w.sync()
        n = self._confirmed
        self._confirmed = 0
        return n

    def busy(self):
        self._w.sync()
        return bool(self.queue)

    def fault(self):
        self._w.sync()
        return self._w.plant.motor_diag()

    def stop(self):
        self._w.sync()
        if self.queue:
            self._confirmed += self.queue[0][2]  # the move cut short: its emitted pulses count
        self.queue = []
        self._phase_us = 0


class SimPressure:
    def __init__(self, world):
        self._w = world

    def read_pa(self):
        """Line pressure in Pa as the board's ADC driver reports it; ValueError on a sensor fault."""
        self._w.sync()
        return self._w.plant.pressure_pa()


class SimRotor:
    """Rotor index sensor (Hall switch, one magnet per roller): rising edges since boot, as the rp2
    board's Pin.irq counter gives them. The plant counts the edges its rotor crossed while integrating,
    so the count is exact however far apart the reads are."""

    def __init__(self, world):
        self._w = world

    def edges(self):
        self._w.sync()
        return self._w.plant.index_edges & _EDGE_MASK


class SimBattery:
    def __init__(self, world):
        self._w = world

    def read_mv(self):
        self._w.sync()
        return self._w.plant.battery_mv()


class SimBuzzer:
    def __init__(self, world):
        self._w = world

    def tone(self, freq_hz):
        self._w.buzzer_hz = freq_hz

    def off(self):
        self._w.buzzer_hz = 0


class SimLed:
    def __init__(self, world):
        self._w = world

    def value(self, on):
        self._w.led = bool(on)


class SimButton:
    """Presses are injected by the host (sim.button); poll() hands them out like the debounced driver."""

    def __init__(self, world):
        self._w = world

    def poll(self):
        ev = self._w.button_events
        return ev.pop(0) if ev else 0
