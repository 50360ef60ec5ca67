# The delivery pipeline: one control tick moves drug from the therapy to the motor and accounts for it.
#
#   steps = dosing.tick(therapy, elapsed_ms, tod_ms)        # whole microsteps due (counted in flight)
#   n = min(steps, guard.allowance(now, in flight before))  # the independent guard may cap them
#   dosing.withhold(steps - n)                              # refused volume is dropped, never caught up
#   motor.move(backlog, period)                             # spread over the tick, if the reserve allows
#   c = motor.take_confirmed(): dosing.confirm(c) -> reservoir.draw_pl -> guard.record   (next tick)
#
# Delivered drug counts confirmed steps only. A stop (reservoir empty, guard violation, step mismatch,
# driver fault, or any exception, see App) stops the motor, confirms what it emitted, abandons what was
# asked and not given (an interrupted bolus is never resumed), raises the alarm and logs.
#
# Time of day (the flex schedule, periodic boluses) is advanced here from the tick deltas; the app sets
# it from the wall clock when the host sets the time (time_set), from the last checkpoint's wall time
# after a reset (off by the checkpoint age plus the downtime, until the host syncs again), else it
# starts at 0 with the uptime (a board that never had its time set runs its day from power-on).
#
# The steady-state tick allocates nothing: ints only, no tuples, the motor and devices of the board.
# Lifetime totals (possibly above small ints) are kept by account(), called outside the tick.
from itpump import alarms as A
from itpump import eventlog
from itpump import store as S
from itpump.dosing import Dosing
from itpump.drugs import MAX_BOLUS_NL, MAX_DAILY_NL, MAX_RATE_NL_PER_H
from itpump.guard import Guard, Limits
from itpump.reservoir import Reservoir
from itpump.therapy import DAY_MS

try:
    from micropython import const
except ImportError:  # CPython (host tools, unit tests)
    def const(x):
        return x

TICK_MS = const(100)  # the app's control tick
SPREAD_US = const(90000)  # a tick's steps are spread over 90 % of the tick: the move ends before the next
PERIOD_MIN_US = const(10)  # board contract: min 10 us, rounded down to even
PERIOD_MAX_US = const(1000000)
MAX_MOVE_STEPS = const(1 << 20)
# Confirmed beyond what was asked, by more than this: the driver runs on its own (STEP_MISMATCH).
MISMATCH_STEPS = const(2)

# Why delivery is halted (bits; 0 = may deliver). Each clears by its own action (see App).
H_EMPTY = const(1)  # reservoir empty: refill
H_GUARD = const(2)  # dose guard violation: acknowledge DOSE_GUARD
H_MISMATCH = const(4)  # acknowledge STEP_MISMATCH
H_STALL = const(8)  # driver fault: acknowledge STALL
H_INTERNAL = const(16)  # exception in the tick, store failure: acknowledge INTERNAL
H_NAMES = ("reservoir_empty", "dose_guard", "step_mismatch", "stall", "internal")
H_BY_ALARM = {A.RESERVOIR_EMPTY: H_EMPTY, A.DOSE_GUARD: H_GUARD, A.STEP_MISMATCH: H_MISMATCH,
              A.STALL: H_STALL, A.INTERNAL: H_INTERNAL}


def hard_limits(pl_per_step):
    """The guard's limits: the device's hard ceilings, whatever the prescription says (the guard must
    hold when therapy or dosing is wrong): rate 1 mL/h, 1 mL in any hour, the daily maximum plus one
    maximal bolus (a catheter prime) in any 24 h."""
    return Limits.from_nl(pl_per_step, MAX_RATE_NL_PER_H, MAX_RATE_NL_PER_H, MAX_DAILY_NL + MAX_BOLUS_NL)


class Pump:
    def __init__(self, board, alarms, pl_per_step, log=None):
        self.motor = getattr(board, "motor", None)  # boards without a motor run the link only
        self._board = board
        self.clock = board.clock
        self.alarms = alarms
        self.log = log
        self.dosing = Dosing(pl_per_step)
        self.reservoir = Reservoir()
        self.guard = Guard(hard_limits(pl_per_step), self.clock)
        self.therapy = None
        self.halt = 0
        self.tod_ms = 0
        self._last = self.clock.ticks_ms()
        self.backlog = 0  # steps granted by the guard, not yet handed to the motor
        self.enabled = False  # motor enabled (a prescription runs and nothing halts it)
        # volumes (nL): since the last refill (< 2**30, persisted with the reserve mark), lifetime, today
        self.delivered_nl = 0
        self.reserved_nl = 0
        self.total_nl = 0
        self.day_nl = 0
        self.programmed_nl = 0
        self.need_save = False  # the reserve mark is (nearly) reached: checkpoint now
        self.reserve_waits = 0  # ticks that held steps back for the checkpoint

    # -- per tick (no allocation) ----------------------------------------------------------------
    def running(self):
        th = self.therapy
        return th is not None and not self.halt and not th.suspended

    def tick(self, now):
        el = self.clock.ticks_diff(now, self._last)
        self._last = now
        if el < 0:
            el = 0
        tod = self.tod_ms + el
        if tod >= DAY_MS:
            tod %= DAY_MS
        self.tod_ms = tod
        motor = self.motor
        if motor is None:
            return
        c = motor.take_confirmed()
        if c:
            self._confirmed(c, now)
        run = self.running()
        if run != self.enabled:
            self._set_enabled(run)
        if not run:
            return
        r = self.reservoir
        if r.is_empty():
            self.stop(H_EMPTY, A.RESERVOIR_EMPTY)
            return
        if r.is_low():
            self.alarms.raise_alarm(A.RESERVOIR_LOW, now)
        if motor.fault():
            self.stop(H_STALL, A.STALL)
            return
        d = self.dosing
        steps = d.tick(self.therapy, el, tod)
        if steps:
            n = self.guard.allowance(now, d.in_flight - steps)
            if n < steps:
                d.withhold(steps - n)
            else:
                n = steps
            self.backlog += n
        n = self.backlog
        if n and not motor.busy():
            if self._est_nl() > self.reserved_nl:
                self.need_save = True  # never deliver past the persisted mark: wait for the checkpoint
                self.reserve_waits += 1
                return
            if n > MAX_MOVE_STEPS:
                n = MAX_MOVE_STEPS
            p = SPREAD_US // n
            if p < PERIOD_MIN_US:
                p = PERIOD_MIN_US
            elif p > PERIOD_MAX_US:
                p = PERIOD_MAX_US
            motor.move(n, p & ~1)
            self.backlog -= n

    def _est_nl(self):
        """Delivered since refill if every step asked so far is given (rounded up): the reserve check."""
        d = self.dosing
        return self.delivered_nl + d.delivered_nl + (d.in_flight * d.pl_per_step + 999) // 1000 + 1

    def _confirmed(self, c, now):
        pl = self.dosing.confirm(c)
        self.reservoir.draw_pl(pl)
        if self.guard.record(c, now):
            self.stop(H_GUARD, A.DOSE_GUARD)
        elif self.dosing.over_confirmed > MISMATCH_STEPS:
            self.stop(H_MISMATCH, A.STEP_MISMATCH)

    def _set_enabled(self, on):
        self.enabled = on
        if on and self.motor is not None:
            self.motor.enable(True)
        else:
            self._halt_motor()
        repl = getattr(self._board, "set_repl_lock", None)
        if repl is not None:
            repl(on)  # while therapy runs, Ctrl-C on the link is data (no REPL under a running pump)

    # -- stopping (may allocate: not the steady state) --------------------------------------------
    def _halt_motor(self):
        """Motor stopped and disabled; what it emitted is confirmed; what was asked and not given is
        dropped; a running bolus is cancelled and logged (never resumed)."""
        m = self.motor
        if m is None:
            return
        try:
            m.stop()
            c = m.take_confirmed()
            if c:
                pl = self.dosing.confirm(c)
                self.reservoir.draw_pl(pl)
                self.guard.record(c, self._last)
        finally:
            m.enable(False)
            self.enabled = False
            self.dosing.abandon()
            self.backlog = 0
            self.abandon_bolus()

    def abandon_bolus(self):
        th = self.therapy
        if th is not None and th.bolus_kind is not None:
            kind, left = th.cancel_bolus()
            self._log_abandoned(left)

    def _log_abandoned(self, left_nl):
        if self.log is not None:
            try:
                self.log.append(eventlog.BOLUS_ABANDONED, left_nl)
            except Exception:  # a failing log must not keep the motor running
                pass

    def stop(self, bit, alarm):
        """Halt delivery for a reason (H_*) and raise its alarm."""
        self.halt |= bit
        try:
            self._halt_motor()
        finally:
            self.alarms.raise_alarm(alarm)

    def release(self, bit):
        """The cause of a halt was dealt with (refill, acknowledged alarm): delivery may resume."""
        self.halt &= ~bit

    # -- outside the tick ----------------------------------------------------------------------
    def set_tod(self, tod_ms):
        self.tod_ms = tod_ms % DAY_MS

    def account(self):
        """Fold the dosing counters into the totals; returns nL delivered since the last call."""
        prog, deliv = self.dosing.take_counters()
        self.programmed_nl += prog
        self.delivered_nl += deliv
        self.total_nl += deliv
        self.day_nl += deliv
        return deliv

    def reserve_rate(self):
        """nL/h the reserve horizon must cover: the highest basal (bridge included) of the schedule."""
        th = self.therapy
        if th is None:
            return 0
        r = th.basal_max_nl_per_h
        for x in th._b_rates:
            if x > r:
                r = x
        return r

    def reserve_extra_nl(self):
        """Volume beyond the basal that may start before the next checkpoint: the running bolus, a
        periodic bolus, what is in flight."""
        th = self.therapy
        d = self.dosing
        extra = (d.in_flight * d.pl_per_step + 999) // 1000 + 1
        if th is not None:
            extra += th.bolus_left_nl
            if th.periodic is not None:
                extra += th.periodic.volume_nl
        return extra

    def new_mark(self):
        """The reserve mark to persist at a checkpoint."""
        return S.reserve_mark(self.delivered_nl, self.reserve_rate(), S.RESERVE_MS, self.reserve_extra_nl())

    def reserve_low(self):
        """True when the mark is close: less than one checkpoint interval of basal plus the extras left."""
        if self.therapy is None:
            return False
        need = S.reserve_mark(self._est_nl(), self.reserve_rate(), S.CHECKPOINT_MS, self.reserve_extra_nl())
        return need > self.reserved_nl

    def rate_now(self):
        th = self.therapy
        if th is None or not self.running():
            return 0
        return th.rate_nl_per_h(self.tod_ms)

    def set_pl_per_step(self, pl):
        self.dosing.set_pl_per_step(pl)
        self.guard.set_limits(hard_limits(pl))
