# From the therapy's rates to whole microsteps, and delivered-volume accounting: exact integer
# integration with carried remainders, confirmed steps only; a step's volume by roller phase comes from
# Pulsation (pulsation.py). The tick's pipeline and the invariant: docs/dosing.md.
from micropython import const

from itpump import LimitError, check_int
from itpump.drugs import MAX_RATE_NL_PER_H
from itpump.prescription import DAY_MS
from itpump.pulsation import BLIND_MAX, PHASE_MAX, PROFILE_BINS, Pulsation

CHUNK_MS = const(1000)  # rate * CHUNK_MS + 3600 < 2**30 for any rate <= MAX_RATE_NL_PER_H
# A gap up to the app's watchdog timeout (8 s, app.py) is delivered: a loop stalled longer is
# reset by the watchdog, so such a gap is the loop's own (a slow flash write, the virtual board's
# fast-forward ticks, up to 7.7 s apart); its volume is the programmed rate integrated over the gap
# (at most 8 s of basal, ~1 uL at the 500 uL/h maximum; a bolus stays capped at its volume), still
# capped by the guard, not a bolus nobody programmed. A longer gap (no watchdog, delivery suspended)
# is not caught up: hours of basal at once would be one. The time dropped is counted in skipped_ms.
MAX_TICK_MS = const(8000)
PL_PER_STEP_MIN = const(1000)  # 1 nL per microstep; the mock heads step 15-50 nL (docs/hardware.md)
PL_PER_STEP_MAX = const(1000000)  # 1 uL
CAL_MIN_NL = const(100000)  # 0.1 mL: on a 1 mg balance that is +-1 %
_CAL_MIN_STEPS = const(1000)
CAL_MAX_CHANGE_PCT = const(20)  # larger jumps mean air, a leak or a misread balance, not wear
# The re-pricing is settled at <= 1/256 of the programmed flow (rounded up to the pL): it moves a trumpet
# window by at most 0.4 %, and 0.5 % of a day (the cold 24 h error it cures) takes ~30 h. Faster costs the
# 31-min figures, which at 0.1 mL/day have no room (bench/accuracy.py: the known-phase residual is ~1.5-1.9 %
# of the 2 %; 1/64 put 2nd-hour windows 1.5 % lower), slower the 24 h one.
SETTLE_DIV = const(256)


def check_pl_per_step(pl_per_step):
    return check_int("pl_per_step", pl_per_step, PL_PER_STEP_MIN, PL_PER_STEP_MAX)


def calibrate(measured_nl, steps, current_pl_per_step=0):
    """pl_per_step from a gravimetric run: `steps` confirmed microsteps pushed `measured_nl`. Rounded up
    (counting a little more per step never under-counts delivered drug). With current_pl_per_step, a
    change of more than CAL_MAX_CHANGE_PCT is refused as a suspect measurement."""
    for name, v, lo in (("measured_nl", measured_nl, CAL_MIN_NL), ("steps", steps, _CAL_MIN_STEPS)):
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


class Dosing(Pulsation):
    def __init__(self, pl_per_step, profile_ppm=None, steps_per_pass_milli=0):
        Pulsation.__init__(self, check_pl_per_step(pl_per_step))
        self._basal_rem = 0  # rate*ms not yet a whole pL (units of pL/3600)
        self._basal_pl = 0  # pL not yet a whole nL
        self._bolus_rem = 0
        self._bolus_pl = 0
        self._due_pl = 0  # programmed, not yet stepped (negative after in-flight steps were re-priced up)
        self.in_flight = 0  # steps handed out by tick() and neither confirmed nor withheld
        self.withheld_steps = 0  # refused by the guard (dropped)
        self.over_confirmed = 0  # steps the driver confirmed beyond those asked: a driver fault sign
        self.skipped_ms = 0  # tick time beyond MAX_TICK_MS, not delivered
        self.programmed_nl = 0  # counters for the caller to read and reset (keep them < 2**30)
        self.delivered_nl = 0  # confirmed, whole nL; the part below 1 nL is in _deliv_pl
        self._deliv_pl = 0
        self._r = 0  # _integrate's second result (no tuple allocated per tick)
        self.owed_pl = 0  # re-priced volume not yet settled on due (+: to step out more, -: less)
        if profile_ppm is not None or steps_per_pass_milli:
            self.set_profile(profile_ppm, steps_per_pass_milli)

    def set_pl_per_step(self, pl_per_step):
        pl_per_step = check_pl_per_step(pl_per_step)
        f = self._flight_pl()  # the steps in flight re-priced, the difference settled on due
        self._tables(pl_per_step)
        self._due_pl += f - self._flight_pl()

    def set_profile(self, profile_ppm, steps_per_pass_milli):
        """A new roller profile (None: flat) for passes of steps_per_pass_milli / 1000 microsteps. Bad
        values raise LimitError and change nothing. The phase is kept (the rotor did not move)."""
        f = self._flight_pl()
        self._profile(profile_ppm, steps_per_pass_milli)
        self._due_pl += f - self._flight_pl()

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
        microsteps now due (counted in flight). In steps with few locals each: a frame over 11 words
        comes from the heap on the chip (docs/epico.md)."""
        if elapsed_ms > MAX_TICK_MS:
            self.skipped_ms += elapsed_ms - MAX_TICK_MS
            elapsed_ms = MAX_TICK_MS
        if elapsed_ms < 0:
            elapsed_ms = 0
        nl = self._programme(therapy, elapsed_ms, tod_ms)
        self.programmed_nl += nl
        return self._steps(self._due_pl + nl * 1000 + self._settle(nl))

    def _programme(self, therapy, ms, tod_ms):
        """Whole nL of basal and bolus over the ms ending at tod_ms, told to the therapy."""
        nl = self._basal(therapy, ms, tod_ms)
        bolus_nl = self._bolus(therapy, ms)
        therapy.programmed(nl, bolus_nl)
        therapy.update(tod_ms)
        return nl + bolus_nl

    def _basal(self, therapy, left, t):
        """Whole nL of basal over the `left` ms ending at t (ms of day), piecewise over the schedule
        segments the interval spans; the fraction of a nL stays in _basal_pl."""
        t -= left
        if t < 0:
            t += DAY_MS
        while left > 0:
            piece = self._basal_piece(therapy, t, left)
            t += piece
            if t >= DAY_MS:
                t -= DAY_MS
            left -= piece
        nl = self._basal_pl // 1000
        self._basal_pl -= nl * 1000
        return nl

    def _basal_piece(self, therapy, t, left):
        """The basal from t (ms of day) to its segment's end, at most `left` ms, into _basal_pl;
        returns the ms integrated."""
        rate = therapy.basal_nl_per_h(t)
        piece = therapy.seg_end_ms - t
        if piece > left:
            piece = left
        rate = self._integrate(rate, piece, self._basal_rem)
        self._basal_rem = self._r
        self._basal_pl += rate
        return piece

    def _bolus(self, therapy, ms):
        """Whole nL of bolus over ms, ending exactly at its volume (the fraction of a nL beyond it is
        dropped)."""
        rate = therapy.bolus_nl_per_h()
        if not rate:
            self._bolus_pl = self._bolus_rem = 0
            return 0
        rate = self._bolus_pl + self._integrate(rate, ms, self._bolus_rem)  # pL
        self._bolus_rem = self._r
        nl = rate // 1000
        self._bolus_pl = rate - nl * 1000
        if nl >= therapy.bolus_left_nl:
            nl = therapy.bolus_left_nl
            self._bolus_pl = self._bolus_rem = 0
        return nl

    def _settle(self, nl):
        """The pL of the first edge's re-pricing settled on this tick's nl programmed: at most
        1/SETTLE_DIV of it."""
        o = self.owed_pl
        if o:
            cap = (nl * 1000 + SETTLE_DIV - 1) // SETTLE_DIV
            if o > cap:
                o = cap
            elif o < -cap:
                o = -cap
            self.owed_pl -= o
        return o

    def _steps(self, due):
        """The whole steps the due pL cover, counted in flight; the rest stays due."""
        if not self.phase_known:
            steps = due // self.pl_per_step if due > 0 else 0
            self._due_pl = due - steps * self.pl_per_step
        else:
            # paced: each next step only when the due volume covers it at its phase (bin by bin)
            self._due_pl = due
            q = self.phase_steps + self.in_flight + self.lead_steps  # phase of the next step
            steps = q
            if steps < 0:
                steps = self._before_pass(steps)
            if steps >= 0:
                steps = self._in_pass(steps)
            steps -= q
        self.in_flight += steps
        return steps

    def _before_pass(self, q):
        """Steps from phase q < 0 (this magnet sits ahead of the mean) at the pass end's volume, as far
        as _due_pl covers them, up to the pass start; returns the phase after them."""
        due = self._due_pl
        v = self._vol[PROFILE_BINS - 1]
        n = due // v if due > 0 else 0  # due is negative after in-flight steps were re-priced up
        if n > -q:
            n = -q
        self._due_pl = due - n * v
        return q + n

    def _in_pass(self, q):
        """Steps from phase q >= 0 at their bins' volumes as far as _due_pl covers them; returns the
        phase after them."""
        due = self._due_pl
        b = self._bin(q)
        while True:
            v = self._vol[b]
            if due < v:
                break
            n = due // v
            if b < PROFILE_BINS - 1 and n >= self._bound[b] - q:
                n = self._bound[b] - q
                b += 1
            due -= n * v
            q += n
        self._due_pl = due
        return q

    def _flight_pl(self):
        return self._sum_pl(self.phase_steps, self.in_flight)

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
        if self.phase_known:
            p = self.phase_steps
            pl = self._sum_pl(p, steps)
            p += steps
            self.phase_steps = p if p < PHASE_MAX else PHASE_MAX
        else:
            pl = steps * self.pl_per_step
            b = self.blind_steps + steps
            self.blind_steps = b if b < BLIND_MAX else BLIND_MAX
        self._deliver_pl(pl)
        return pl

    def _deliver_pl(self, pl):
        d = self._deliv_pl + pl
        nl = d // 1000
        self.delivered_nl += nl
        self._deliv_pl = d - nl * 1000

    def index_edge(self, batch_steps=0, lead_steps=0):
        """The rotor index saw a pass start among the last batch_steps confirmed steps (lead_steps: its
        magnet's learnt placement): the phase is set, steps in flight re-priced onto due. Returns the pL a
        first edge re-priced into delivered, for the reservoir (docs/dosing.md, "The index edge")."""
        if not self.spp_milli:
            return 0
        if batch_steps < 0:
            batch_steps = 0
        f = self._flight_pl()
        first = not self.phase_known
        self._place(batch_steps, lead_steps)
        self._due_pl += f - self._flight_pl()
        if not first:
            return 0
        a = self._reprice(batch_steps, self.phase_steps, self.owed_pl)
        self._deliver_pl(a)
        self.owed_pl -= a  # settled on the programme (tick())
        return a

    def forget_phase(self):
        """The rotor's position is no longer known (a stall): flat mean steps until the next edge; those
        confirmed while the rotor stood stay counted at the mean."""
        f = self._flight_pl()
        self._lose_phase()
        self._due_pl += f - self._flight_pl()

    def delivered_nl_up(self):
        """Delivered volume in nL, rounded up (never under-counts)."""
        return self.delivered_nl + (1 if self._deliv_pl else 0)

    def abandon(self):
        """After motor.stop() and a last confirm(): steps asked but never confirmed are dropped (an
        interrupted bolus is never resumed). Returns how many, for the log."""
        n = self.in_flight
        self.in_flight = 0
        return n

    def take_programmed_nl(self):
        """Programmed nL since the last call, then zeroed: the caller keeps the lifetime total (bigger
        than a small int) outside the tick. No tuple: housekeeping runs this every second."""
        r = self.programmed_nl
        self.programmed_nl = 0
        return r

    def take_delivered_nl(self):
        """Delivered nL rounded up since the last call, then zeroed; the sub-nL part stays carried.
        Never reported negative: a count lowered by a first edge's re-pricing below what was
        reported is carried and paid off by the next steps, so the totals never fall (and stay >= the
        truth, which is how they were counted)."""
        up = self.delivered_nl_up()
        if up >= 0:
            # the sub-nL part was just reported as a whole nL: carry that over-count (-1 nL + the part)
            self.delivered_nl = -1 if self._deliv_pl else 0
            return up
        return 0
