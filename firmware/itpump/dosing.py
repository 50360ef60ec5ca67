# From the therapy's rates to whole microsteps, and delivered-volume accounting: exact integer
# integration with carried remainders, confirmed steps only, roller-pulsation pricing by phase.
# The tick's pipeline, the invariant and the re-pricing of blind steps: docs/dosing.md.
from micropython import const

from itpump import LimitError
from itpump.drugs import MAX_RATE_NL_PER_H
from itpump.prescription import DAY_MS

CHUNK_MS = const(1000)  # rate * CHUNK_MS + 3600 < 2**30 for any rate <= MAX_RATE_NL_PER_H
# A gap up to the app's watchdog timeout (app.WDT_TIMEOUT_MS) is delivered: a loop stalled longer is
# reset by the watchdog, so such a gap is the loop's own (a slow flash write, the virtual board's
# fast-forward ticks, up to 7.7 s apart); its volume is the programmed rate integrated over the gap
# (at most 8 s of basal, ~1 uL at the 500 uL/h maximum; a bolus stays capped at its volume), still
# capped by the guard, not a bolus nobody programmed. A longer gap (no watchdog, delivery suspended)
# is not caught up: hours of basal at once would be one. The time dropped is counted in skipped_ms.
MAX_TICK_MS = const(8000)
PL_PER_STEP_MIN = const(1000)  # 1 nL per microstep; the plant range is 20-100 nL (DESIGN.md)
PL_PER_STEP_MAX = const(1000000)  # 1 uL
CAL_MIN_NL = const(100000)  # 0.1 mL: on a 1 mg balance that is +-1 %
_CAL_MIN_STEPS = const(1000)
CAL_MAX_CHANGE_PCT = const(20)  # larger jumps mean air, a leak or a misread balance, not wear
PROFILE_BINS = const(32)  # pulsation profile bins per roller pass (board contract)
_PROFILE_PPM_MAX = const(500000)  # each bin within -50 %..+50 % of the mean
_PROFILE_MEAN_PPM_MAX = const(1000)  # the bins average to the mean (sum ~ 0): |mean| <= 0.1 %
SPP_MILLI_MIN = const(32000)  # at least one step per bin
_SPP_MILLI_MAX = const(8000000)  # 8000 steps per pass: phase * 32000 and (k + 1) * spp_milli < 2**30
_PHASE_MAX = const(1 << 28)  # the phase stops counting here (the last bin holds long before)
LEAD_MAX_DIV = const(16000)  # a magnet's lead is held within 1/16 of a pass (2 bins; placement is ~0.5)
_BLIND_MAX = const(1 << 20)  # steps counted while the phase is unknown (x 1000 < 2**30); beyond: no re-pricing
_REPRICE_MAX_PL = const(1 << 28)  # a pass's steps x the largest step deviation, and the owed: small ints
_REPRICE_BATCH_DIV = const(8)  # an edge placed no better than 1/8 of a pass (its batch) re-prices nothing
# The re-pricing is settled at <= 1/256 of the programmed flow (rounded up to the pL): it moves a trumpet
# window by at most 0.4 %, and 0.5 % of a day (the cold 24 h error it cures) takes ~30 h. Faster costs the
# 31-min figures, which at 0.1 mL/day have no room (bench/accuracy.py: the known-phase residual is ~1.5-1.9 %
# of the 2 %; 1/64 put 2nd-hour windows 1.5 % lower), slower the 24 h one.
SETTLE_DIV = const(256)


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


def check_profile(profile_ppm, steps_per_pass_milli):
    """Validate a roller pulsation profile (board calibration "pulsation_ppm", "steps_per_pass_milli");
    returns it as a tuple of 32 ints. LimitError names the bad field."""
    spp = steps_per_pass_milli
    if type(spp) is not int:
        raise LimitError("steps_per_pass_milli", spp, "an integer", "must be")
    if not SPP_MILLI_MIN <= spp <= _SPP_MILLI_MAX:
        raise LimitError("steps_per_pass_milli", spp, SPP_MILLI_MIN if spp < SPP_MILLI_MIN else _SPP_MILLI_MAX,
                         "outside %d..%d (microsteps per roller pass x 1000); limit" % (SPP_MILLI_MIN, _SPP_MILLI_MAX))
    if not isinstance(profile_ppm, (list, tuple)) or len(profile_ppm) != PROFILE_BINS:
        raise LimitError("pulsation_ppm", profile_ppm, PROFILE_BINS, "must be a list of this many integers:")
    total = 0
    for i in range(PROFILE_BINS):
        v = profile_ppm[i]
        if type(v) is not int or not -_PROFILE_PPM_MAX <= v <= _PROFILE_PPM_MAX:
            raise LimitError("pulsation_ppm[%d]" % i, v, _PROFILE_PPM_MAX, "must be an integer within +-")
        total += v
    if total > PROFILE_BINS * _PROFILE_MEAN_PPM_MAX or total < -PROFILE_BINS * _PROFILE_MEAN_PPM_MAX:
        raise LimitError("pulsation_ppm", total, PROFILE_BINS * _PROFILE_MEAN_PPM_MAX,
                         "sum (the bins must average to the mean volume, pl_per_step) is beyond +-")
    return tuple(profile_ppm)


class Dosing:
    def __init__(self, pl_per_step, profile_ppm=None, steps_per_pass_milli=0):
        self.pl_per_step = check_pl_per_step(pl_per_step)
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
        # pulsation: per-bin step volumes and bin ends (first phase of the next bin), made once
        self._vol = [pl_per_step] * PROFILE_BINS
        self._bound = [_PHASE_MAX] * PROFILE_BINS
        self.profile_ppm = None
        self.spp_milli = 0  # 0: no pass length known, index_edge() does nothing
        self.max_step_pl = pl_per_step  # the largest step volume of the profile
        self.pass_excess_pl = 0  # volume a run of steps can carry beyond steps * pl_per_step (see below)
        self.phase_known = False
        self.phase_steps = 0  # confirmed steps since the pass start (capped at _PHASE_MAX)
        self._edge_milli = 0  # the pass started this many milli-steps before phase 0 (< 1000)
        self.lead_steps = 0  # steps this edge's magnet sits after the mean pass start (index_edge lead_steps)
        self.index_edges = 0
        self._blind = 0  # steps confirmed since the phase was lost (boot, forget_phase), capped at _BLIND_MAX
        self.owed_pl = 0  # re-priced volume not yet settled on due (+: to step out more, -: less)
        self.repriced_pl = 0  # what the last first edge put into delivered (index_edge)
        self.reprice_est_pl = 0  # its estimate before the bound (what the blind steps carried beyond the mean)
        self._dev_max = 0  # the largest |step volume - pl_per_step| of the profile
        self._reprice_ok = False  # the re-pricing's sums stay small ints (_REPRICE_MAX_PL)
        if profile_ppm is not None or steps_per_pass_milli:
            self.set_profile(profile_ppm, steps_per_pass_milli)

    def set_pl_per_step(self, pl_per_step):
        pl_per_step = check_pl_per_step(pl_per_step)
        f = self._flight_pl()
        self.pl_per_step = pl_per_step
        self._tables()
        self._due_pl += f - self._flight_pl()

    def set_profile(self, profile_ppm, steps_per_pass_milli):
        """A new roller profile (None: flat) for passes of steps_per_pass_milli / 1000 microsteps. Bad
        values raise LimitError and change nothing. The phase is kept (the rotor did not move)."""
        if profile_ppm is None:
            check_profile([0] * PROFILE_BINS, steps_per_pass_milli)
        else:
            profile_ppm = check_profile(profile_ppm, steps_per_pass_milli)
        f = self._flight_pl()
        self.profile_ppm = profile_ppm
        self.spp_milli = steps_per_pass_milli
        self._tables()
        self._due_pl += f - self._flight_pl()

    def _tables(self):
        pl = self.pl_per_step
        prof = self.profile_ppm
        spp = self.spp_milli
        vol = self._vol
        bound = self._bound
        top = low = pl
        excess = 0
        start = 0
        for k in range(PROFILE_BINS):
            # rounded up: a step is never counted below its volume
            v = pl if prof is None else (pl * (1000000 + prof[k]) + 999999) // 1000000
            vol[k] = v
            if v > top:
                top = v
            elif v < low:
                low = v
            end = ((k + 1) * spp + 31999) // 32000 if spp else _PHASE_MAX
            if k == PROFILE_BINS - 1:
                end = _PHASE_MAX  # a late edge: the steps past the pass end stay in the last bin
            elif v > pl:
                excess += (end - start) * (v - pl)
            bound[k] = end
            start = end
        if vol[PROFILE_BINS - 1] > pl and spp:
            excess += ((spp + 999) // 1000 - start) * (vol[PROFILE_BINS - 1] - pl)
        self.max_step_pl = top
        dev = top - pl if top - pl > pl - low else pl - low  # the largest |step volume - pl_per_step|
        self._dev_max = dev
        self._reprice_ok = spp > 0 and (spp // 1000 + 2) * dev < _REPRICE_MAX_PL
        # Consecutive steps are consecutive rotor phases (the rotor moves only by steps), so any run of n
        # steps carries at most n * pl_per_step + pass_excess_pl: the guard's volume windows use it.
        self.pass_excess_pl = excess

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
        o = self.owed_pl
        if o:  # the first edge's re-pricing, settled on the programme at most 1/SETTLE_DIV at a time
            cap = (nl * 1000 + SETTLE_DIV - 1) // SETTLE_DIV
            if o > cap:
                o = cap
            elif o < -cap:
                o = -cap
            due += o
            self.owed_pl -= o
        if not self.phase_known:
            steps = due // self.pl_per_step if due > 0 else 0
            self._due_pl = due - steps * self.pl_per_step
            self.in_flight += steps
            return steps
        # paced: each next step only when the due volume covers it at its phase (bin by bin)
        q = self.phase_steps + self.in_flight + self.lead_steps  # phase of the next step
        vol = self._vol
        bound = self._bound
        steps = 0
        if q < 0:  # before the pass start (this magnet sits ahead of the mean): the pass end's volume
            v = vol[PROFILE_BINS - 1]
            n = due // v if due > 0 else 0  # due is negative after in-flight steps were re-priced up
            if n > -q:
                n = -q
            due -= n * v
            q += n
            steps = n
            if q < 0:
                self._due_pl = due
                self.in_flight += steps
                return steps
        b = self._bin(q)
        while True:
            v = vol[b]
            if due < v:
                break
            n = due // v
            if b < PROFILE_BINS - 1:
                room = bound[b] - q
                if n >= room:
                    n = room
                    b += 1
            due -= n * v
            q += n
            steps += n
        self._due_pl = due
        self.in_flight += steps
        return steps

    def _bin(self, phase):
        if phase >= self._bound[PROFILE_BINS - 2]:
            return PROFILE_BINS - 1
        return phase * 32000 // self.spp_milli

    def _sum_pl(self, phase, n):
        """Volume of n steps from `phase` on at the current phase state (no allocation for tick-sized n)."""
        if n <= 0:
            return 0
        if not self.phase_known:
            return n * self.pl_per_step
        vol = self._vol
        bound = self._bound
        phase += self.lead_steps
        pl = 0
        if phase < 0:  # see tick(): before the pass start
            k = n if n < -phase else -phase
            pl = k * vol[PROFILE_BINS - 1]
            phase += k
            n -= k
            if n <= 0:
                return pl
        b = self._bin(phase)
        while n > 0:
            k = n
            if b < PROFILE_BINS - 1:
                room = bound[b] - phase
                if k > room:
                    k = room
            pl += k * vol[b]
            phase += k
            n -= k
            b += 1
        return pl

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
            self.phase_steps = p if p < _PHASE_MAX else _PHASE_MAX
        else:
            pl = steps * self.pl_per_step
            b = self._blind + steps
            self._blind = b if b < _BLIND_MAX else _BLIND_MAX
        self._deliver_pl(pl)
        return pl

    def _deliver_pl(self, pl):
        d = self._deliv_pl + pl
        nl = d // 1000
        self.delivered_nl += nl
        self._deliv_pl = d - nl * 1000

    def index_edge(self, batch_steps=0, lead_steps=0):
        """The rotor index sensor saw a pass start among the last batch_steps confirmed steps (those
        confirmed since the caller last read the sensor; already passed to confirm()). Sets the phase.

        Where in the batch: with the phase known, where the last pass predicts it (its start plus one
        pass, kept to the milli-step), held within the batch (an early edge: at its end; a late one: at
        its start). Phase error after the edge: < 1 step when the edge comes where predicted (evenly
        spaced magnets), else at most the batch; the first edge (phase unknown) at the batch's middle,
        error <= batch / 2. A batch is 0-2 steps at 100 ms ticks at the plant's rates, up to ~100 in a
        5 s fast-forward tick. The batch's steps after the edge were already counted in the last bin (a
        late edge keeps the last bin; the profile is continuous over the pass start, so that costs at
        most the batch times the bin 31 - bin 0 difference).
        Steps still in flight are re-priced at their new phases and the difference settled on the next
        steps (no drift); if they now carry more, delivery runs ahead of the programme by at most
        in_flight * (max - min step volume) until it is caught up. The pump reads the sensor right after
        collecting confirmations, when normally nothing is in flight.
        lead_steps: where this edge's magnet sits against the mean of the magnets (the profile's
        reference), learnt by the pump from the step counts between edges: the pass start the profile
        means is lead_steps before this edge (negative: after it; the steps before it then carry the
        pass end's volume). Held within 1/16 of a pass.

        The first edge (phase unknown before it) also re-prices the steps confirmed blind, counted at the
        mean (_reprice); returns the pL that put into delivered (for the reservoir; 0 at later edges)."""
        if not self.spp_milli:
            return 0
        if batch_steps < 0:
            batch_steps = 0
        f = self._flight_pl()
        p = self.phase_steps
        x = 0
        first = not self.phase_known
        if first:
            p = batch_steps >> 1
        else:
            d = self.spp_milli - self._edge_milli  # milli-steps from phase 0 to the predicted edge
            s = (d + 999) // 1000  # first step boundary at or after it
            p -= s
            if p < 0:  # early
                p = 0
            elif p > batch_steps:  # late
                p = batch_steps
            else:
                x = s * 1000 - d
        self.phase_known = True
        self.phase_steps = p
        self._edge_milli = x
        lim = self.spp_milli // LEAD_MAX_DIV
        self.lead_steps = -lim if lead_steps < -lim else lim if lead_steps > lim else lead_steps
        self.index_edges += 1
        self._due_pl += f - self._flight_pl()
        if not first:
            return 0
        a = self._reprice(batch_steps, p)
        self._blind = 0
        return a

    def _reprice(self, batch, p):
        """The blind steps at the first edge. Complete passes carry the mean (pl_per_step is measured over
        them); the last r = blind mod a pass steps ran at the phases p - r .. p - 1 from this edge (a pass
        start, the profile repeating before it), so they carried est = the sum of their deviations from
        the mean. est > 0: they carried more; it goes into delivered as estimated (more counted is the
        safe side). est < 0: lowering the count needs proof: where the edge fell in its batch (+-batch/2)
        and this magnet's lead (+-1/16 of a pass; not learnt yet at a first edge) are unknown, so the
        count goes down only by the least drop over every such shift of the arc (exact: a slide over the
        shifts), plus one step when whole passes were split (they end within a step of the arc), and
        never below the truth the profile gives. The settled pL is owed to the programme (tick())."""
        spp = self.spp_milli
        n = self._blind
        self.repriced_pl = self.reprice_est_pl = 0
        o = self.owed_pl
        if n <= 0 or n >= _BLIND_MAX or not self._reprice_ok or batch * 1000 * _REPRICE_BATCH_DIV > spp \
                or o > _REPRICE_MAX_PL or o < -_REPRICE_MAX_PL:
            return 0  # nothing blind, too long to know, a profile too deep for small ints, an edge unplaced
        m = n * 1000
        r = (m % spp) // 1000  # the steps within the last pass
        q = p - r + self.lead_steps  # the arc's first step, in phase of the profile's pass
        est = self._arc_dev(q, r)
        self.reprice_est_pl = est
        if est < 0:
            lim = spp // LEAD_MAX_DIV
            k = -(batch >> 1) - lim  # the arc's shift from its true place, lowest first
            hi = batch - (batch >> 1) + lim
            q = p - r + k
            x = self._arc_dev(q, r)
            top = x
            vol = self._vol
            while k < hi:  # slide by one step: one enters at the arc's end, one leaves at its start
                # a step's volume at phase q of the profile's pass (any q: the passes repeat)
                x += vol[((q + r) * 32000 // spp) % PROFILE_BINS] - vol[(q * 32000 // spp) % PROFILE_BINS]
                q += 1
                k += 1
                if x > top:
                    top = x
            if m >= spp:
                top += self._dev_max
            est = top if top < 0 else 0
        self.repriced_pl = est
        self._deliver_pl(est)
        self.owed_pl -= est
        return est

    def _arc_dev(self, q, n):
        """The volume beyond the mean of n steps from phase q on (any q: the passes repeat), bin by bin."""
        spp = self.spp_milli
        vol = self._vol
        pl = self.pl_per_step
        s = 0
        while n > 0:
            k = q * 32000 // spp
            m = -(-(k + 1) * spp // 32000) - q  # steps left in bin k: its end is ceil((k + 1) spp / 32000)
            if m > n:
                m = n
            s += m * (vol[k % PROFILE_BINS] - pl)
            q += m
            n -= m
        return s

    def forget_phase(self):
        """The rotor's position is no longer known (a stall): flat mean steps until the next edge, and the
        blind steps counted afresh (those confirmed while the rotor stood stay counted at the mean)."""
        self._blind = 0
        if self.phase_known:
            f = self._flight_pl()
            self.phase_known = False
            self.phase_steps = 0
            self._edge_milli = 0
            self.lead_steps = 0
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
