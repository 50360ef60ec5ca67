# Step/dir stepper driver (TMC2209 or DRV8825 in standalone mode) with pulses timed and counted by PIO.
# Timer callbacks jitter with GC pauses; a PIO state machine does not. Delivered steps are the ones
# the state machine reports having emitted (steppio.py), never the ones asked for.
import rp2
from micropython import const

from itpump.hal.steppio import step_program

SM_FREQ_HZ = const(1_000_000)  # one SM cycle per microsecond
PERIOD_OVERHEAD_CYCLES = const(10)  # period = 2 * D + 10 cycles (steppio.py)
PERIOD_MIN_US = const(10)  # D = 0: STEP high 5 us (DRV8825 needs 1.9 us, TMC2209 100 ns)
PERIOD_MAX_US = const(1_000_000)
MAX_MOVE_STEPS = const(1 << 20)  # keeps counts small ints and far below the 24-bit counter window
MAX_IN_FLIGHT = const(2)  # 2 moves = 4 words fill the TX FIFO; the 4-deep RX FIFO never fills
_COUNT_MASK = const(0xFFFFFF)  # the SM pushes the low 24 bits of its pulse counter

# TMC2209 standalone microstep pins (datasheet table "MS2, MS1: microstep setting"): (MS1, MS2).
TMC2209_MICROSTEPS = {8: (0, 0), 32: (1, 0), 64: (0, 1), 16: (1, 1)}


def microstep_levels(microsteps):
    """(MS1, MS2) levels for a TMC2209 microstep setting; ValueError names the allowed ones."""
    if microsteps not in TMC2209_MICROSTEPS:
        raise ValueError("microsteps %r not settable by MS1/MS2 (8, 16, 32, 64)" % (microsteps,))
    return TMC2209_MICROSTEPS[microsteps]


def period_loops(step_period_us):
    """Half-period loop count D for a step period in us (rounded down to an even number of us)."""
    return (step_period_us - PERIOD_OVERHEAD_CYCLES) // 2


class PioStepper:
    """Board `motor`: enable(on), move(steps, step_period_us), take_confirmed(), stop(), busy(), fault().

    Pins are machine.Pin objects made by the board. EN is driven active only while a move is in flight
    and the motor is enabled; DIR is driven to forward before every move (this pump never reverses:
    reverse would aspirate from the catheter).
    """

    def __init__(self, sm_id, step_pin, dir_pin, en_pin, diag_pin=None, ms_pins=(), microsteps=16,
                 dir_forward=1, en_active=0, diag_active=1):
        self._dir = dir_pin
        self._en = en_pin
        self._diag = diag_pin
        self._dir_forward = dir_forward
        self._en_active = en_active
        self._diag_active = diag_active
        self.microsteps = microsteps
        self._en.value(1 - en_active)  # driver off first
        self._dir.value(dir_forward)
        if ms_pins:
            levels = microstep_levels(microsteps)
            for i in range(len(ms_pins)):
                ms_pins[i].value(levels[i])
        self._sm = rp2.StateMachine(sm_id, step_program, freq=SM_FREQ_HZ, sideset_base=step_pin)
        # Instructions exec'd by stop(), encoded once here (encoding compiles a string).
        self._op_clear_isr = rp2.asm_pio_encode("mov(isr, null)", 1)
        self._op_read_y = rp2.asm_pio_encode("in_(y, 24)", 1)
        self._op_push = rp2.asm_pio_encode("push(noblock)", 1)
        self._op_pull = rp2.asm_pio_encode("pull(noblock)", 1)
        self._enabled = False
        self._in_flight = 0
        self._last_count = _COUNT_MASK  # the counter starts at ~0
        self._confirmed = 0
        self._sm.active(1)

    # -- helpers ---------------------------------------------------------------------------
    def _account(self, count):
        # The counter counts down; a difference mod 2**24 is exact while < 2**24 pulses pass unread.
        self._confirmed += (self._last_count - count) & _COUNT_MASK
        self._last_count = count

    def _poll(self):
        sm = self._sm
        while sm.rx_fifo():
            self._account(sm.get())
            self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            self._en.value(1 - self._en_active)  # enable only while moving

    # -- contract -----------------------------------------------------------------------------
    def enable(self, on):
        """Allow moves (True) or stop and forbid them (False)."""
        if not on:
            self.stop()
        self._enabled = bool(on)

    def move(self, steps, step_period_us):
        """Queue `steps` forward steps at `step_period_us`; returns at once (the PIO times them)."""
        if not self._enabled:
            raise ValueError("motor not enabled")
        if not 0 < steps <= MAX_MOVE_STEPS:
            raise ValueError("steps %d out of 1..%d" % (steps, MAX_MOVE_STEPS))
        if not PERIOD_MIN_US <= step_period_us <= PERIOD_MAX_US:
            raise ValueError("step_period_us %d out of %d..%d" % (step_period_us, PERIOD_MIN_US, PERIOD_MAX_US))
        self._poll()
        if self._in_flight >= MAX_IN_FLIGHT:
            raise ValueError("motor queue full (%d moves in flight)" % MAX_IN_FLIGHT)
        self._dir.value(self._dir_forward)  # DIR settles before EN and the first STEP edge
        self._en.value(self._en_active)
        self._in_flight += 1
        self._sm.put(steps)
        self._sm.put(period_loops(step_period_us))

    def take_confirmed(self):
        """Steps the PIO confirmed emitting since the last call (whole moves, and stop()'s partial)."""
        self._poll()
        n = self._confirmed
        self._confirmed = 0
        return n

    def busy(self):
        self._poll()
        return self._in_flight > 0

    def fault(self):
        """True when the driver's DIAG/fault output is at its active level."""
        return self._diag is not None and self._diag.value() == self._diag_active

    def stop(self):
        """Stop at once: SM halted, driver off, queued moves dropped, the pulses already emitted confirmed."""
        sm = self._sm
        # Halt the SM before disabling the driver: a pulse emitted in between would be confirmed
        # although the disabled driver ignored it (booked as delivered, never pumped).
        sm.active(0)
        self._en.value(1 - self._en_active)
        while sm.rx_fifo():  # moves that completed
            self._account(sm.get())
        if self._in_flight > 0:  # the move cut short: read the counter itself
            sm.exec(self._op_clear_isr)
            sm.exec(self._op_read_y)
            sm.exec(self._op_push)
            self._account(sm.get())
        while sm.tx_fifo():  # drop the words of queued moves
            sm.exec(self._op_pull)
        sm.restart()  # back to the first instruction: the counter restarts at ~0, STEP low
        self._last_count = _COUNT_MASK
        self._in_flight = 0
        sm.active(1)
