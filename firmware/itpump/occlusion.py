# Occlusion / leak / stall / sensor-fault detection from line pressure and motor feedback.
# Integer only (Pa, nL, steps, Q8/Q16 fixed point), nothing allocated per tick.
# The line model, the CUSUMs and the stair test: docs/occlusion.md.
from micropython import const

from itpump import check_int

OK = const(0)
OCCLUSION = const(1)
LEAK = const(2)
STALL = const(3)
SENSOR = const(4)
CLEARED = const(5)  # once, on the tick an occlusion clears; released_nl says how much went in at once
NAMES = ("ok", "occlusion", "leak", "stall", "sensor", "cleared")
_GO = const(-1)  # internal: not decided yet
_INT_MAX = const(0x3FFFFFFF)  # the largest small int on the chip

_W_SHIFT = const(4)  # slow CUSUM on means of 16 ticks
_W = const(16)
_ARM_SHIFT = const(8)  # CUSUMs armed once the baseline has 2**8 ticks behind it
_B_SHIFT_MAX = const(11)  # baseline EWMA: 2**11 ticks (205 s at 100 ms): follows sensor thermal drift
_SIG_SHIFT = const(10)  # noise estimate EWMA over 2**10 samples
_RS_SHIFT = const(3)  # smoothed residual (stored volume, clearing) over 8 ticks
# EWMAs round to nearest: a plain >> floors, a bias of half an LSB every tick, times 2**shift, that puts
# the baseline 4 Pa low and the noise estimate 8 % low, enough for false alarms.
_B_HALF = const(1 << (_B_SHIFT_MAX - 1))
_SIG_HALF = const(1 << (_SIG_SHIFT - 1))
_SIGW_HALF = const(1 << (_SIG_SHIFT - _W_SHIFT - 1))
_RS_HALF = const(1 << (_RS_SHIFT - 1))
# CUSUM tuning in units of the estimated noise sigma (x8 to stay integer). Chosen with bench/occlusion.py:
# zero false alarms in 30 simulated days at each rate, then as fast as that allows.
_KF_X8 = const(12)  # fast: allowance 1.5 sigma per tick (near-optimal for a ramp of 0.5 sigma/tick)
_KO_X8 = const(8)  # onset tracker: allowance 1 sigma
_HF_X8 = const(56)  # fast: threshold 7 sigma (white-noise ARL ~1e10 ticks, Siegmund's approximation)
_KS_X8 = const(12)  # slow: allowance 1.5 sigma_w per window
_HS_X8 = const(80)  # slow: threshold 10 sigma_w
# Model allowance: the flow-driven pressure Q*R is only known to calibration accuracy (R, C) and the
# pump's flow ripples with rotor angle, so both allowances grow by this fraction of the mean expected
# flow pressure (x8), on the slow CUSUM (the fast one's per-tick noise dwarfs the ripple).
# Matters at high rates only: Q*R is ~27 Pa at 5 mL/day, ~0.5 Pa at 0.1 mL/day.
_MODEL_X8 = const(3)
_CLEAR_TICKS = const(10)  # occlusion gone when the smoothed residual stays under a third of its peak
_GAP_DECAY_MAX = const(64)  # ticks of model decay applied over a gap (x is ~0 long before for any tau < 2 s)
_MIN_STEPS = const(2)  # steps delivered during the rise before occlusion / leak is called
# Stair test: the likelihood ratio of "the line has been blocked since just before step j" against
# "open", for each of the last _SK step ticks j, each followed _SW ticks. Blocked, every step from j on
# stays in the line as a full v/C stair and the pressure held at the onset stops decaying, so the
# residual's expected shape is known: mu = (v/C) * steps since j + x at j - x now. The log likelihood
# ratio sum(mu r - mu^2 / 2) / sigma^2 is the optimal statistic for that known change with an unknown
# onset (Lorden's CUSUM over onsets). It calls a blocked line at its second stair where the steps are
# seconds apart (bench, median x the physical limit: 0.61 at 0.1 mL/day and 0.70 at 0.5, against 0.81
# and 0.98 for the CUSUMs alone) and ties with the fast CUSUM at 5 mL/day. Its threshold bounds false
# alarms: open, each candidate's likelihood ratio (mu clipped is the ratio of a clipped shape) is a
# martingale, so it ever exceeds e**20 with probability <= e**-20 (Ville), ~0.02
# expected in the ~1e7 onsets of 30 days at 5 mL/day (the bench's 7-day open-line maximum: 12.4 nats).
# Units: sigma / 16, so every sum stays below 2**29.
_SK = const(4)
_SW = const(256)  # 25.6 s: two stairs at 0.1 mL/day (13 s apart) fit in one candidate's life
_SH_X256 = const(5120)  # threshold 20 nats (x 256: the sums are in (sigma / 16)**2)
_S_CLIP = const(1024)  # |mu| held within 64 sigma, |r| within 8: _SW * _S_CLIP**2 < 2**30
_SR_CLIP = const(128)
_SN_MAX = const(64)
# one flat list holds the test (an attribute more on the instance slows every lookup of the tick under
# micropython: 10 more cost the whole update 45 % on the unix port): per candidate _CF ints, then 6
_CF = const(6)
_F_N = const(0)  # steps since the candidate onset
_F_X = const(1)  # the model's x just before its step (sigma / 16)
_F_S = const(2)  # sum mu r
_F_Q = const(3)  # sum mu^2
_F_M = const(4)  # steps pumped into its ratio since that was last <= 0 (after its own)
_F_A = const(5)  # ticks followed (a candidate lives _SW)
_C_NEXT = const(24)  # _SK * _CF: the next slot; the live candidates are the _C_LIVE slots before it
_C_LIVE = const(25)
_C_DP = const(26)  # one step's full pressure v/C (Pa x 256): what a blocked line keeps
_C_RS = const(27)  # this tick's residual, model x and stair height, in sigma / 16 (_stairs_scale)
_C_XS = const(28)
_C_DS = const(29)


class Detector:
    """Call update() once per control tick, after the pressure reading. Returns OK, OCCLUSION, LEAK,
    STALL, SENSOR or CLEARED. Arguments from calibration (ints): pl_per_step, compliance_nl_per_kpa,
    resistance_pa_s_per_ul (catheter, with the drug's viscosity), noise_pa (sigma of one reading)."""

    def __init__(self, pl_per_step, compliance_nl_per_kpa, resistance_pa_s_per_ul, noise_pa,
                 tick_ms=100, stall_margin_steps=2, leak_near_zero_pa=400, stuck_ticks=100,
                 gross_pa=10000):
        for name, v in (("pl_per_step", pl_per_step), ("compliance_nl_per_kpa", compliance_nl_per_kpa),
                        ("resistance_pa_s_per_ul", resistance_pa_s_per_ul), ("noise_pa", noise_pa),
                        ("tick_ms", tick_ms), ("stuck_ticks", stuck_ticks)):
            check_int(name, v, 1, _INT_MAX)
        check_int("stall_margin_steps", stall_margin_steps, 0, _INT_MAX)
        check_int("leak_near_zero_pa", leak_near_zero_pa, 0, _INT_MAX)
        check_int("gross_pa", gross_pa, 1, _INT_MAX)
        self.tick_ms = tick_ms
        self.gross_q8 = gross_pa << 8
        self.c_nl_per_kpa = compliance_nl_per_kpa
        self.pl_per_step = pl_per_step
        tau_ms = resistance_pa_s_per_ul * compliance_nl_per_kpa // 1000  # (Pa s/uL)(nL/kPa) = 1e-6 s
        # decay per tick, bilinear (Tustin) stand-in for exp(-dt/tau): no float math, error < 1 %
        a = (2 * tau_ms - tick_ms) * 65536 // (2 * tau_ms + tick_ms)
        self._a_q16 = a if a > 0 else 0
        # one step's pressure v/C, and the part left at the sample when steps are spread over the tick
        dp_q8 = pl_per_step * 256 // compliance_nl_per_kpa
        g = tau_ms * (65536 - self._a_q16) // tick_ms
        self._dp_q8 = dp_q8 * (g if g < 65536 else 65536) >> 16
        self.noise_pa = noise_pa
        self.stall_margin = stall_margin_steps
        self.leak_zero_q8 = leak_near_zero_pa << 8
        self.stuck_ticks = stuck_ticks
        self._c = [0] * (_C_DS + 1)  # the stair test (made once: the tick only rewrites its ints)
        self._c[_C_DP] = dp_q8
        # What the detector learns and holds, set by reset() (Pa x 256 unless named otherwise).
        # Noise: sigma of one reading and of a 16-tick mean, and the EWMAs of |successive difference|
        # they come from (of readings, of window means).
        self.sig_q8 = self.sigw_q8 = self._sabs = self._swabs = 0
        # Baseline pressure (learned tip pressure + offset), the baseline when it armed (after priming:
        # what a leak is judged against), its EWMA shift (armed at _ARM_SHIFT) and ticks at that shift.
        self.b_q8 = self.bref_q8 = self._bshift = self._bn = 0
        # The line model: pressure above the baseline expected from recent steps, and its long-run mean
        # (the flow pressure Q*R).
        self.x_q8 = self.xavg_q8 = 0
        # Residuals: this tick's and the last, smoothed (and its peak in an occlusion), the last window's
        # mean.
        self._r = self._r_prev = self.rs_q8 = self._peak_rs = self._rw_prev = 0
        # The CUSUMs (fast, slow rise, slow fall, onset tracker), the steps each counts towards its alarm
        # (the slow rise's also every step since it left zero), the open window's sums (residual, steps,
        # mean pressure) and ticks.
        self.sf = self.ss = self.sl = self._so = 0
        self._f_steps = self._s_steps = self._s_all = self._l_steps = self._o_steps = 0
        self._wsum = self._wsteps = self._psum = self._wn = 0
        # The motor: commanded steps not confirmed. The sensor: the last reading, ticks it repeated.
        self.pending = self._last_p = self._same_n = 0
        # The verdict, ticks towards clearing it, steps delivered into the rise before the alarm, volume
        # held in the line's compliance now, and released when the last occlusion cleared.
        self.state = OK
        self._clear_n = self.onset_steps = self.stored_nl = self.released_nl = 0
        self.reset()

    def reset(self):
        """Forget the baseline and every fault (after priming, a refill, a clinician restart)."""
        n = self.noise_pa << 8
        self.sig_q8 = n
        self.sigw_q8 = n >> 2  # white noise: a 16-tick mean has sigma / 4
        self._sabs = n * 289 >> 8  # mean |successive difference| = 1.128 sigma
        self._swabs = self._sabs >> 2
        self.b_q8 = self.bref_q8 = self._bshift = self._bn = 0
        self.x_q8 = self.xavg_q8 = 0
        self._r = self._r_prev = self.rs_q8 = self._peak_rs = self._rw_prev = 0
        self.pending = self._same_n = 0
        self._last_p = -1
        self.onset_steps = self.released_nl = 0
        self._rearm()

    def armed(self):
        return self._bshift >= _ARM_SHIFT

    def update(self, pressure_pa, steps_cmd, steps_confirmed, diag=False):
        """pressure_pa: this tick's reading (None when the read failed); steps_cmd: steps issued since
        the last call; steps_confirmed: steps the driver confirmed since the last call; diag: driver
        DIAG / stall flag."""
        # Named steps, each with few locals: a frame over 11 words comes from the heap on the chip
        # (docs/epico.md). Each test uses the noise estimate from before this tick's reading.
        if self._stalled(steps_cmd, steps_confirmed, diag):
            return STALL
        if self._sensor_fault(pressure_pa):
            return SENSOR
        return self._detect(pressure_pa << 8, steps_confirmed)

    def _detect(self, p_q8, steps):
        """update() once the motor and the sensor are fine."""
        x = (self.x_q8 * self._a_q16 >> 16) + steps * self._dp_q8
        self.x_q8 = x
        self.xavg_q8 += (x - self.xavg_q8 + _B_HALF) >> _B_SHIFT_MAX
        res = self._follow(p_q8, x)
        if res != _GO:
            return res
        if self._same_n:
            # The reading repeats the last one: the first sign of a frozen ADC (a live, dithered reading
            # repeats on a few % of ticks). It feeds no statistic, so a freeze can neither raise an
            # occlusion or leak before SENSOR nor leave a CUSUM half way to one when the sensor returns.
            # Its steps still count.
            self._wsteps += steps
            if self.sf > 0:
                self._f_steps += steps
            self._stairs(0, steps, False)
            return OK
        sig = self.sig_q8
        self._noise()
        self._baseline(p_q8 - x, sig)
        if self._bshift < _ARM_SHIFT:
            return OK
        res = self._fast(steps, sig)
        if res == OK:
            res = self._stairs(self._r, steps, True)
        if res == OK:
            res = self._slow(p_q8, steps, sig)
        return res

    def _noise(self):
        """The noise estimate (open line only), from successive residuals."""
        r = self._r
        d = r - self._r_prev
        self._r_prev = r
        if d < 0:
            d = -d
        if d < self.sig_q8 << 3:
            self._sabs += (d - self._sabs + _SIG_HALF) >> _SIG_SHIFT
            s = self._sabs * 227 >> 8  # mean |difference of two| * sqrt(pi)/2 = sigma
            lo = self.noise_pa << 7
            self.sig_q8 = lo if s < lo else (lo << 3 if s > lo << 3 else s)

    def _baseline(self, p0_q8, sig):
        """Baseline learning from p0_q8 (the reading less the model), frozen while a CUSUM is half way
        to its alarm."""
        if (self.sf << 4) < sig * _HF_X8 and (self.ss << 4) < self.sigw_q8 * _HS_X8 and \
                (self.sl << 4) < self.sigw_q8 * _HS_X8:
            bs = self._bshift
            self.b_q8 += (p0_q8 - self.b_q8 + (1 << bs >> 1)) >> bs
            if bs < _B_SHIFT_MAX:
                self._bn += 1
                if self._bn >= (1 << bs):
                    self._bshift = bs + 1
                    self._bn = 0
                    if bs + 1 == _ARM_SHIFT:
                        self.bref_q8 = self.b_q8

    def _fast(self, steps, sig):
        """The onset tracker and the fast CUSUM, every tick: OK or OCCLUSION."""
        # onset tracker: a CUSUM with half the noise as allowance leaves zero near the start of a ramp
        # (the alarm CUSUM, with its larger allowance, only once the ramp is steep); the steps since it
        # left zero are the volume pumped into the blocked line when the fast CUSUM alarms
        so = self._so + self._r - (sig * _KO_X8 >> 3)
        if so <= 0:
            so = 0
            self._o_steps = 0
        else:
            self._o_steps += steps
            if so > sig << 5:  # bounded: a long excursion of a slow rate must not grow it without end
                so = sig << 5
        self._so = so
        sf = self.sf + self._r - (sig * _KF_X8 >> 3)
        if sf <= 0:
            sf = 0
            self._f_steps = 0
        else:
            # steps since it left zero: they need not each meet a rising residual (at fast rates most
            # of a ramp's steps land on noise-low ticks); a frozen reading feeds no CUSUM (above)
            self._f_steps += steps
            hf = sig * _HF_X8 >> 3
            if sf > hf:
                sf = hf
                # steps pumped into the rise: since the onset tracker left zero (the rise's start, as
                # missed_nl() reports it) or since this CUSUM did, whichever counts more. Counting
                # only the latter held a saturated alarm back until the next step whenever noise had
                # dipped this CUSUM to zero mid-ramp (bench, 5 mL/day: 2 onsets in 24, by 1-2 ticks)
                n = self._o_steps
                if n < self._f_steps:
                    n = self._f_steps
                if n >= _MIN_STEPS:
                    self.sf = sf
                    return self._alarm(n)
        self.sf = sf
        return OK

    def _slow(self, p_q8, steps, sig):
        """The slow CUSUMs, on 16-tick means: OK until a window is full, then OK, OCCLUSION or LEAK."""
        self._wsteps += steps
        self._wsum += self._r
        self._psum += p_q8 >> _W_SHIFT
        self._wn += 1
        if self._wn < _W:
            return OK
        return self._window(sig)

    def _window(self, sig):
        """A full window: its mean residual into the noise estimate and the slow CUSUMs, with the
        allowance they share: noise and model (see _MODEL_X8)."""
        rw = self._wsum >> _W_SHIFT
        self._wsum = 0
        self._wn = 0
        sw = self.sigw_q8  # this window's tests use the estimate from before it
        kw = (sw * _KS_X8 >> 3) + (self.xavg_q8 * _MODEL_X8 >> 3)
        self._window_noise(rw, sig)
        res = self._rise(rw, sw, kw)
        if res == OK:
            res = self._fall(rw, sw, kw)
        self._psum = 0  # after _fall: a leak is judged on the window's mean pressure
        return res

    def _window_noise(self, rw, sig):
        """The noise estimate of a 16-tick mean, from successive windows."""
        dw = rw - self._rw_prev
        self._rw_prev = rw
        if dw < 0:
            dw = -dw
        if dw < self.sigw_q8 << 3:
            self._swabs += (dw - self._swabs + _SIGW_HALF) >> (_SIG_SHIFT - _W_SHIFT)
            s = self._swabs * 227 >> 8
            lo = self.sig_q8 >> 2
            self.sigw_q8 = lo if s < lo else (sig if s > sig else s)

    def _rise(self, rw, sw, kw):
        """The slow CUSUM of a rising mean: OCCLUSION or OK. Also counts the window's steps towards
        the leak CUSUM's: steps count towards an alarm only from windows that moved its CUSUM, so a
        pressure jump with the motor at rest (posture, a stuck sensor) is never called either."""
        n = self._wsteps
        self._wsteps = 0
        if rw > kw:
            self._s_steps += n
        if -rw > kw:
            self._l_steps += n
        ss = self.ss + rw - kw
        if ss <= 0:
            ss = 0
            self._s_steps = 0
            self._s_all = 0
        else:
            self._s_all += n  # every step since it left zero: the volume pumped into the rise
            if ss > sw * _HS_X8 >> 3:
                ss = sw * _HS_X8 >> 3
                if self._s_steps >= _MIN_STEPS:
                    self.ss = ss
                    return self._alarm(self._s_all)
        self.ss = ss
        return OK

    def _fall(self, rw, sw, kw):
        """The slow CUSUM of a falling mean: LEAK, or a lower tip pressure learnt, or OK."""
        sl = self.sl - rw - kw
        if sl <= 0:
            sl = 0
            self._l_steps = 0
        elif sl > sw * _HS_X8 >> 3:
            sl = sw * _HS_X8 >> 3
            pw = self._psum  # the window's mean pressure
            if self._l_steps >= _MIN_STEPS and (pw < self.leak_zero_q8 or pw < self.bref_q8 >> 1):
                self.state = LEAK
                self._clear_n = 0
                self.sl = sl
                return LEAK
            if self._l_steps >= _MIN_STEPS:
                # settled lower, above half the primed baseline (the tip pressure fell): learn it
                self.b_q8 += rw
                self.rs_q8 = 0
                sl = 0
                self._l_steps = 0
        self.sl = sl
        return OK

    def _stairs_clear(self):
        self._c[_C_NEXT] = 0
        self._c[_C_LIVE] = 0

    def _stairs(self, r, steps, feed):
        """The stair test (see _SK): a new candidate on a tick with steps, every live one followed
        (they were made on different ticks and live equally long, so the oldest is the one to expire).
        feed False (a repeated reading): steps are counted, the sums are not fed."""
        if steps > 0:
            self._stairs_add(steps)
        if not self._c[_C_LIVE]:
            return OK
        if feed:  # this tick's residual, model and stair height in the test's units, clipped
            c = self._c
            sig = self.sig_q8
            v = (r << 4) // sig
            c[_C_RS] = _SR_CLIP if v > _SR_CLIP else (-_SR_CLIP if v < -_SR_CLIP else v)
            c[_C_XS] = (self.x_q8 << 4) // sig
            v = (c[_C_DP] << 4) // sig
            c[_C_DS] = _S_CLIP if v > _S_CLIP else v
        return self._stairs_follow(steps, feed)

    def _stairs_add(self, steps):
        """A candidate onset just before this tick's steps, in the oldest slot."""
        c = self._c
        j = c[_C_NEXT]
        c[_C_NEXT] = j + _CF if j + _CF < _C_NEXT else 0
        c[j + _F_N] = 0
        # what a line blocked just before this tick's steps holds: x before them
        v = ((self.x_q8 - steps * self._dp_q8) << 4) // self.sig_q8
        c[j + _F_X] = _S_CLIP if v > _S_CLIP else (-_S_CLIP if v < -_S_CLIP else v)
        c[j + _F_S] = 0
        c[j + _F_Q] = 0
        c[j + _F_A] = 0
        if c[_C_LIVE] < _SK:
            c[_C_LIVE] += 1

    def _stairs_follow(self, steps, feed):
        """Every live candidate one tick on, newest first: OCCLUSION when one calls the line blocked."""
        c = self._c
        live = c[_C_LIVE]
        j = c[_C_NEXT]
        while live:
            j = (j if j else _C_NEXT) - _CF
            c[j + _F_A] += 1
            n = c[j + _F_N] + steps
            if n > _SN_MAX:
                n = _SN_MAX
            c[j + _F_N] = n
            if feed and self._stairs_blocked(j, steps):
                return self._alarm(n)
            live -= 1
        if c[j + _F_A] >= _SW:  # the oldest has lived its span
            c[_C_LIVE] -= 1
        return OK

    def _stairs_blocked(self, j, steps):
        """Feeds candidate j's likelihood ratio: True when it calls the line blocked since its onset."""
        c = self._c
        mu = c[_C_DS] * c[j + _F_N] + c[j + _F_X] - c[_C_XS]
        mu = _S_CLIP if mu > _S_CLIP else (-_S_CLIP if mu < -_S_CLIP else mu)
        c[j + _F_S] += c[_C_RS] * mu
        c[j + _F_Q] += mu * mu
        llr = c[j + _F_S] - (c[j + _F_Q] >> 1)
        # as for the CUSUMs, steps must go into the rise: a back-pressure bump after the pump went
        # idle fits an onset some steps back, and is not an occlusion until pumping continues into it
        if llr <= 0 or c[j + _F_A] == 1:
            c[j + _F_M] = 0
            return False
        c[j + _F_M] += steps
        return llr > _SH_X256 and c[j + _F_M] > 0 and c[j + _F_N] >= _MIN_STEPS

    def _alarm(self, steps):
        self.state = OCCLUSION
        self.onset_steps = steps
        self._clear_n = 0
        self._peak_rs = 0
        self._occluded()
        return OCCLUSION

    def _occluded(self):
        rs = self.rs_q8
        v = (rs if rs > 0 else 0) * self.c_nl_per_kpa // 256000  # Pa x C = nL
        self.stored_nl = v
        if rs > self._peak_rs:
            self._peak_rs = rs
        # cleared: the smoothed residual fell under a third of its peak (the stored volume drained)
        if rs < self._peak_rs // 3:
            self._clear_n += 1
            if self._clear_n >= _CLEAR_TICKS:
                self.released_nl = self._peak_rs * self.c_nl_per_kpa // 256000 - v  # the peak's volume less now
                self._rearm()
                return CLEARED
        else:
            self._clear_n = 0
        return OCCLUSION

    def _stalled(self, steps_cmd, steps_confirmed, diag):
        """Shared by update() and update_gap(): a stall is certain, no statistics needed."""
        self.pending += steps_cmd - steps_confirmed
        if diag or self.pending - steps_cmd > self.stall_margin:
            self.state = STALL
            return True
        return False

    def _sensor_fault(self, pressure_pa):
        """Shared by update() and update_gap(): a missing or frozen reading (a live, dithered reading
        never repeats for long)."""
        if pressure_pa is None:
            return True
        if pressure_pa == self._last_p:
            self._same_n += 1
            return self._same_n >= self.stuck_ticks
        self._last_p = pressure_pa
        self._same_n = 0
        return False

    def _follow(self, p_q8, x):
        """Shared by update() and update_gap(): the first reading starts the baseline; the residual
        (left in self._r, no tuple per tick) and its smoothed value; a latched occlusion or leak is
        followed to its clearing. Returns a result, or _GO when the caller goes on to detection."""
        if self._bshift == 0:  # first reading: start the baseline there
            self.b_q8 = p_q8 - x
            self._bshift = 1
            return OK
        r = p_q8 - self.b_q8 - x
        self._r = r
        self.rs_q8 += (r - self.rs_q8 + _RS_HALF) >> _RS_SHIFT
        state = self.state
        if state == OCCLUSION:
            return self._occluded()
        if state == LEAK:
            if r > -(self.sig_q8 * 3):
                self._clear_n += 1
                if self._clear_n >= _CLEAR_TICKS:
                    self._rearm()
                    return OK
            else:
                self._clear_n = 0
            return LEAK
        return _GO

    def _rearm(self):
        self.state = OK
        self.sf = 0
        self.ss = 0
        self.sl = 0
        self._f_steps = 0
        self._so = 0
        self._o_steps = 0
        self._s_steps = 0
        self._s_all = 0
        self._l_steps = 0
        self._wsum = 0
        self._wsteps = 0
        self._psum = 0
        self._wn = 0
        self._clear_n = 0
        self.stored_nl = 0
        self._stairs_clear()

    def clear_motor(self):
        """The motor was stopped (or a stall acknowledged): what was asked and never confirmed is dropped,
        so it does not read as a stall forever after."""
        self.pending = 0
        if self.state == STALL:
            self.state = OK

    def update_gap(self, pressure_pa, steps_cmd, steps_confirmed, diag, elapsed_ms):
        """A tick far from tick_ms (a stalled loop, the virtual board's fast clock): the statistics are
        tuned to a fixed tick, so the CUSUMs, noise and baseline estimates are NOT fed. What still runs:
        the motor and sensor checks, the line model's decay over the gap (the steps of the gap went in
        at its start), an occlusion or leak already called (it clears on levels, not statistics), and a
        gross limit: pressure more than gross_pa over the baseline with steps pumped into it is an
        occlusion whatever the tick. Returns like update()."""
        if self._stalled(steps_cmd, steps_confirmed, diag):
            return STALL
        if self._sensor_fault(pressure_pa):
            return SENSOR
        self._stairs_clear()  # its shapes assume the fixed tick
        x = self.x_q8 + steps_confirmed * self._dp_q8
        n = elapsed_ms // self.tick_ms
        if n > _GAP_DECAY_MAX:
            n = _GAP_DECAY_MAX
        a = self._a_q16
        while n > 0 and x:
            x = x * a >> 16
            n -= 1
        self.x_q8 = x
        p_q8 = pressure_pa << 8
        res = self._follow(p_q8, x)
        if res != _GO:
            return res
        r = self._r
        if r > self.gross_q8 and steps_confirmed > 0:
            self.rs_q8 = r  # the level is known now: the stored volume and its clearing start from it
            return self._alarm(steps_confirmed)
        return OK

    def missed_nl(self):
        """Drug pumped into the line since the rise began (not delivered yet): steps since the alarm's
        CUSUM (fast alarm: the onset tracker's, when larger) left zero, x volume per step."""
        return self.onset_steps * self.pl_per_step // 1000
