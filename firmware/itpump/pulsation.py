# Roller pulsation: a step's volume by its phase in the roller's pass (a profile of 32 bins), the phase
# set at each rotor index edge, and the re-pricing of the steps confirmed before the first edge. Dosing
# inherits it and keeps the accounting; the model and its error bounds: docs/dosing.md.
from micropython import const

from itpump import LimitError, check_int

PROFILE_BINS = const(32)  # pulsation profile bins per roller pass (board contract)
_PROFILE_PPM_MAX = const(500000)  # each bin within -50 %..+50 % of the mean
_PROFILE_MEAN_PPM_MAX = const(1000)  # the bins average to the mean (sum ~ 0): |mean| <= 0.1 %
SPP_MILLI_MIN = const(32000)  # at least one step per bin
_SPP_MILLI_MAX = const(8000000)  # 8000 steps per pass: phase * 32000 and (k + 1) * spp_milli < 2**30
PHASE_MAX = const(1 << 28)  # the phase stops counting here (the last bin holds long before)
LEAD_MAX_DIV = const(16000)  # a magnet's lead is held within 1/16 of a pass (2 bins; placement is ~0.5)
BLIND_MAX = const(1 << 20)  # steps counted while the phase is unknown (x 1000 < 2**30); beyond: no re-pricing
_REPRICE_MAX_PL = const(1 << 28)  # a pass's steps x the largest step deviation, and the owed: small ints
_REPRICE_BATCH_DIV = const(8)  # an edge placed no better than 1/8 of a pass (its batch) re-prices nothing


def check_profile(profile_ppm, steps_per_pass_milli):
    """Validate a roller pulsation profile (board calibration "pulsation_ppm", "steps_per_pass_milli");
    returns it as a tuple of 32 ints. LimitError names the bad field."""
    check_int("steps_per_pass_milli", steps_per_pass_milli, SPP_MILLI_MIN, _SPP_MILLI_MAX)
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


class Pulsation:
    def __init__(self, pl_per_step):
        self.pl_per_step = pl_per_step  # the mean step volume (pL), the profile's reference
        # per-bin step volumes and bin ends (first phase of the next bin), made once
        self._vol = [pl_per_step] * PROFILE_BINS
        self._bound = [PHASE_MAX] * PROFILE_BINS
        self.profile_ppm = None
        self.spp_milli = 0  # 0: no pass length known, Dosing.index_edge() does nothing
        self.max_step_pl = pl_per_step  # the largest step volume of the profile
        self.pass_excess_pl = 0  # volume a run of steps can carry beyond steps * pl_per_step (_tables)
        self.phase_known = False
        self.phase_steps = 0  # confirmed steps since the pass start (capped at PHASE_MAX; Dosing.confirm)
        self._edge_milli = 0  # the pass started this many milli-steps before phase 0 (< 1000)
        self.lead_steps = 0  # steps this edge's magnet sits after the mean pass start (_place)
        self.index_edges = 0
        self.blind_steps = 0  # confirmed since the phase was lost (boot, a stall), capped at BLIND_MAX (Dosing.confirm)
        self.repriced_pl = 0  # what the last first edge put into delivered (_reprice)
        self.reprice_est_pl = 0  # its estimate before the bound (what the blind steps carried beyond the mean)
        self._dev_max = 0  # the largest |step volume - pl_per_step| of the profile
        self._reprice_ok = False  # the re-pricing's sums stay small ints (_REPRICE_MAX_PL)

    def _profile(self, profile_ppm, steps_per_pass_milli):
        """Validate and take a profile (None: flat) for passes of steps_per_pass_milli / 1000 microsteps;
        LimitError changes nothing."""
        if profile_ppm is None:
            check_profile([0] * PROFILE_BINS, steps_per_pass_milli)
        else:
            profile_ppm = check_profile(profile_ppm, steps_per_pass_milli)
        self.profile_ppm = profile_ppm
        self.spp_milli = steps_per_pass_milli
        self._tables(self.pl_per_step)

    def _tables(self, pl):
        """The per-bin step volumes and bin ends for a mean step of pl pL."""
        self.pl_per_step = pl
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
            end = ((k + 1) * spp + 31999) // 32000 if spp else PHASE_MAX
            if k == PROFILE_BINS - 1:
                end = PHASE_MAX  # a late edge: the steps past the pass end stay in the last bin
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
        phase += self.lead_steps
        pl = 0
        if phase < 0:  # before the pass start: see Dosing._before_pass
            k = n if n < -phase else -phase
            pl = k * self._vol[PROFILE_BINS - 1]
            phase += k
            n -= k
            if n <= 0:
                return pl
        return pl + self._sum_bins(phase, n)

    def _sum_bins(self, phase, n):
        """Volume of n > 0 steps from phase >= 0 on, bin by bin (a frame within 11 words: on the chip a
        larger one comes from the heap, docs/epico.md)."""
        pl = 0
        b = self._bin(phase)
        while n > 0:
            k = n
            if b < PROFILE_BINS - 1 and k > self._bound[b] - phase:
                k = self._bound[b] - phase
            pl += k * self._vol[b]
            phase += k
            n -= k
            b += 1
        return pl

    def _place(self, batch_steps, lead_steps):
        """The phase at an index edge among the last batch_steps confirmed steps (docs/dosing.md, "The
        index edge")."""
        p = self.phase_steps
        x = 0
        if not self.phase_known:
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

    def _reprice(self, batch, p, owed_pl):
        """The blind steps at the first edge (phase p, batch steps wide) re-priced at the phases they had,
        never below what the profile proves (docs/dosing.md, "The first edge"); nothing while owed_pl is
        beyond small ints. Returns the pL to book into delivered (Dosing.index_edge)."""
        spp = self.spp_milli
        n = self.blind_steps
        self.blind_steps = 0
        self.repriced_pl = self.reprice_est_pl = 0
        if n <= 0 or n >= BLIND_MAX or not self._reprice_ok or batch * 1000 * _REPRICE_BATCH_DIV > spp \
                or owed_pl > _REPRICE_MAX_PL or owed_pl < -_REPRICE_MAX_PL:
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


    def _lose_phase(self):
        """The rotor's position is unknown: flat mean steps until the next edge, blind steps counted afresh."""
        self.blind_steps = 0
        self.phase_known = False
        self.phase_steps = 0
        self._edge_milli = 0
        self.lead_steps = 0
