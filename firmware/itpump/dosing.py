# From the therapy's rates to whole microsteps, and delivered-volume accounting.
#
# Per control tick the app does (elapsed_ms from clock.ticks_diff, tod_ms = time of day at the tick):
#     steps = dosing.tick(therapy, elapsed_ms, tod_ms)     # steps due now; counted as in flight
#     n = min(steps, guard.allowance(now_ms, dosing.in_flight))
#     dosing.withhold(steps - n)                           # refused volume is dropped, never caught up
#     motor.move(n, period_us)
#     c = motor.take_confirmed(); pl = dosing.confirm(c); reservoir.draw_pl(pl); guard.record(c, now_ms)
#
# Volume is integrated exactly in integers: rate (nL/h) * ms / 3600 = pL, with the remainder carried, so
# rounding never drifts. Each stream (basal, bolus) is passed to the therapy in whole nL (it ends boluses
# and the bridge at their exact volume) and the whole nL become steps at pl_per_step with the remainder
# carried: delivery lags the exact integral by less than one microstep plus 1 nL per stream and never
# runs ahead of it. Delivered drug counts only steps the driver confirmed, and reports round up.
# rp2 small ints are 31-bit: rate <= 1e6 nL/h times a chunk of <= 1000 ms stays below 2**30.
from itpump.drugs import MAX_RATE_NL_PER_H
from itpump.therapy import DAY_MS, LimitError

try:
    from micropython import const
except ImportError:  # CPython (host tools, unit tests)
    def const(x):
        return x

CHUNK_MS = const(1000)  # rate * CHUNK_MS + 3600 < 2**30 for any rate <= MAX_RATE_NL_PER_H
# A longer gap (the loop stalled, delivery was suspended) is not caught up: catching up hours of basal
# at once would be a bolus nobody programmed. The time dropped is counted in skipped_ms for the log.
MAX_TICK_MS = const(5000)
PL_PER_STEP_MIN = const(1000)  # 1 nL per microstep; the plant range is 20-100 nL (DESIGN.md)
PL_PER_STEP_MAX = const(1000000)  # 1 uL
CAL_MIN_NL = const(100000)  # 0.1 mL: on a 1 mg balance that is +-1 %
CAL_MIN_STEPS = const(1000)
CAL_MAX_CHANGE_PCT = const(20)  # larger jumps mean air, a leak or a misread balance, not wear


def check_pl_per_step(pl_per_step):
    if type(pl_per_step) is not int:
        raise LimitError("pl_per_step", pl_per_step, "an integer", "must be")
    if not PL_PER_STEP_MIN <= pl_per_step <= PL_PER_STEP_MAX:
        lim = PL_PER_STEP_MIN if pl_per_step < PL_PER_STEP_MIN else PL_PER_STEP_MAX
        raise LimitError("pl_per_step", pl_per_step, lim, "outside %d..%d pL; limit"
                         % (PL_PER_STEP_MIN, PL_PER_STEP_MAX))
    return pl_per_step


def calibrate(measured_nl, steps, current_pl_per_step=0):
    """pl_per_step from a gravimetric run: `steps` confirmed microsteps pushed `measured_nl`. Rounded up
    (counting a little more per step never under-counts delivered drug). With current_pl_per_step, a
    change of more than CAL_MAX_CHANGE_PCT is refused as a suspect measurement."""
    for name, v, lo in (("measured_nl", measured_nl, CAL_MIN_NL), ("steps", steps, CAL_MIN_STEPS)):
        if type(v) is not int:
            raise LimitError(name, v, "an integer", "must be")
        if v < lo:
            raise LimitError(name, v, lo, "too small for a 1 % calibration; minimum")
    pl = (measured_nl * 1000 + steps - 1) // steps
    check_pl_per_step(pl)
    if current_pl_per_step:
        dev = pl - current_pl_per_step
        if dev < 0:
            dev = -dev
        if dev * 100 > current_pl_per_step * CAL_MAX_CHANGE_PCT:
            raise LimitError("measured_nl", measured_nl, CAL_MAX_CHANGE_PCT,
                             "gives %d pL/step, %d pL from the current %d: over the allowed change in %%"
                             % (pl, dev, current_pl_per_step))
    return pl


class Dosing:
    def __init__(self, pl_per_step):
        self.pl_per_step = check_pl_per_step(pl_per_step)
        self._basal_rem = 0  # rate*ms not yet a whole pL (units of pL/3600)
        self._basal_pl = 0  # pL not yet a whole nL
        self._bolus_rem = 0
        self._bolus_pl = 0
        self._due_pl = 0  # programmed, not yet a whole step
        self.in_flight = 0  # steps handed out by tick() and neither confirmed nor withheld
        self.withheld_steps = 0  # refused by the guard (dropped)
        self.over_confirmed = 0  # steps the driver confirmed beyond those asked: a driver fault sign
        self.skipped_ms = 0  # tick time beyond MAX_TICK_MS, not delivered
        self.programmed_nl = 0  # counters for the caller to read and reset (keep them < 2**30)
        self.delivered_nl = 0  # confirmed, whole nL; the part below 1 nL is in _deliv_pl
        self._deliv_pl = 0
        self._r = 0  # _integrate's second result (no tuple allocated per tick)

    def set_pl_per_step(self, pl_per_step):
        self.pl_per_step = check_pl_per_step(pl_per_step)

    # -- per tick (no allocation) ----------------------------------------------------------------
    def _integrate(self, rate, ms, rem):
        """pL for `ms` at `rate` nL/h plus the carried remainder; the new remainder in self._r."""
        if rate > MAX_RATE_NL_PER_H:
            rate = MAX_RATE_NL_PER_H  # the therapy validated this; belt and braces for the int range
        pl = 0
        while ms > 0:
            piece = CHUNK_MS if ms > CHUNK_MS else ms
            num = rate * piece + rem
            q = num // 3600
            rem = num - q * 3600
            pl += q
            ms -= piece
        self._r = rem
        return pl

    def tick(self, therapy, elapsed_ms, tod_ms):
        """Integrate the therapy over the elapsed_ms ending at tod_ms (ms of day); return the whole
        microsteps now due (counted in flight)."""
        if elapsed_ms > MAX_TICK_MS:
            self.skipped_ms += elapsed_ms - MAX_TICK_MS
            elapsed_ms = MAX_TICK_MS
        if elapsed_ms < 0:
            elapsed_ms = 0
        # basal, piecewise over the schedule segments the interval spans
        t = tod_ms - elapsed_ms
        if t < 0:
            t += DAY_MS
        left = elapsed_ms
        pl = self._basal_pl
        while left > 0:
            rate = therapy.basal_nl_per_h(t)
            piece = therapy.seg_end_ms - t
            if piece > left:
                piece = left
            pl += self._integrate(rate, piece, self._basal_rem)
            self._basal_rem = self._r
            t += piece
            if t >= DAY_MS:
                t -= DAY_MS
            left -= piece
        basal_nl = pl // 1000
        self._basal_pl = pl - basal_nl * 1000
        # bolus, ending exactly at its volume (the fraction of a nL beyond it is dropped)
        bolus_nl = 0
        rate = therapy.bolus_nl_per_h()
        if rate:
            pl = self._bolus_pl + self._integrate(rate, elapsed_ms, self._bolus_rem)
            self._bolus_rem = self._r
            bolus_nl = pl // 1000
            self._bolus_pl = pl - bolus_nl * 1000
            if bolus_nl >= therapy.bolus_left_nl:
                bolus_nl = therapy.bolus_left_nl
                self._bolus_pl = self._bolus_rem = 0
        else:
            self._bolus_pl = self._bolus_rem = 0
        therapy.programmed(basal_nl, bolus_nl)
        therapy.update(tod_ms)
        nl = basal_nl + bolus_nl
        self.programmed_nl += nl
        due = self._due_pl + nl * 1000
        steps = due // self.pl_per_step
        self._due_pl = due - steps * self.pl_per_step
        self.in_flight += steps
        return steps

    def withhold(self, steps):
        """The guard refused `steps` of those tick() returned: they are dropped, not caught up later."""
        if steps > 0:
            if steps > self.in_flight:
                steps = self.in_flight
            self.in_flight -= steps
            self.withheld_steps += steps

    def confirm(self, steps):
        """Steps the driver confirmed (motor.take_confirmed()). The ONLY source of delivered volume.
        Returns the pL they carry (for the reservoir)."""
        if steps <= 0:
            return 0
        if steps > self.in_flight:
            self.over_confirmed += steps - self.in_flight  # still counted: never under-count
            self.in_flight = 0
        else:
            self.in_flight -= steps
        pl = steps * self.pl_per_step
        d = self._deliv_pl + pl
        nl = d // 1000
        self.delivered_nl += nl
        self._deliv_pl = d - nl * 1000
        return pl

    def delivered_nl_up(self):
        """Delivered volume in nL, rounded up (never under-counts)."""
        return self.delivered_nl + (1 if self._deliv_pl else 0)

    def abandon(self):
        """After motor.stop() and a last confirm(): steps asked but never confirmed are dropped (an
        interrupted bolus is never resumed). Returns how many, for the log."""
        n = self.in_flight
        self.in_flight = 0
        return n

    def take_counters(self):
        """(programmed_nl, delivered_nl rounded up) since the last call, then zeroed: the caller keeps
        the lifetime totals (bigger than small ints) outside the tick. The sub-nL part stays carried."""
        r = (self.programmed_nl, self.delivered_nl_up())
        self.programmed_nl = 0
        # the sub-nL part was just reported as a whole nL: carry that over-count (-1 nL + the part)
        self.delivered_nl = -1 if self._deliv_pl else 0
        return r
