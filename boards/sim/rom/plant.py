# Physics of the virtual board's world: pump head, tubing, catheter, outlet, reservoir, pressure sensor
# + ADC, battery. Simulated world, not firmware (floats are fine); runs under micropython and CPython.
# Honesty rule: every constant cites its source; an ASSUMPTION errs on the side that makes the firmware's
# job harder. Line model C dP/dt = Q_pump - G_cath (P - P_out) - G_leak P, integrated exactly: docs/sim.md.
import math

# ---- pump head ---------------------------------------------------------------------------------
# Volume per microstep, geometry estimate for the mock pump head (to be replaced by the gravimetric
# bench calibration): 1.02 mm ID pump tubing (a standard 2-stop size, e.g. Tygon LMT-55 / PharMed BPT
# 0.040 in ID) on a 3-roller head with a 24 mm occlusion-track diameter: pi*(0.51 mm)^2 * pi*24 mm
# = 61.6 uL/rev; times 0.8 displacement efficiency (ASSUMPTION: the pinched zones under the rollers do
# not pump) = 49 uL/rev; a 200 full-step motor at 16 microsteps (TMC2209 default MRES) = 3200
# microsteps/rev -> 15.4 nL; we use 15 nL.
NOMINAL_PL_PER_STEP = 15000
STEPS_PER_REV = 3200  # 1.8 deg motor (200 steps/rev) x 16 microsteps
ROLLERS = 3
# Per-unit bias: the unit's true mean volume/step against NOMINAL_PL_PER_STEP (the geometry estimate
# above), i.e. what a gravimetric calibration has to find: tubing set-to-set, roller gap, warm-up.
# ASSUMPTION +-2 % uniform, for tubing from one measured lot; the ID tolerance of extruded ~1 mm tubing
# allows far more (check the lot's datasheet). It costs nothing once the unit is calibrated
# (bench/accuracy.py calibrates as docs/hardware.md says); it shows in uncalibrated figures and in any
# model fed the nominal value (bench/occlusion.py's detector calibration).
UNIT_BIAS_MAX = 0.02
# Step-to-step volume scatter (ASSUMPTION, sigma 5 %: microstep angle error of hybrid steppers is several
# % of a full step without tuning; it averages out over many steps, costs only short-window accuracy).
STEP_SCATTER = 0.05
# Roller pulsation: flow per step varies with rotor angle over each roller pass (a roller leaving the
# tube lets it re-open and draw back; well documented for peristaltic pumps, amplitude depends on the
# head). ASSUMPTION: +-20 % sinusoid over each 1/3 rev, zero mean over a pass. It costs accuracy in
# windows shorter than a roller pass (3.8 h at 0.1 mL/day!), and makes the occlusion rise uneven.
PULSATION = 0.2
# Back-slip under back pressure: the roller occlusion leaks backwards as outlet pressure rises.
# ASSUMPTION: 2 % less volume per step per 100 kPa (order of magnitude for well-occluded heads).
SLIP_PER_PA = 0.02 / 100000.0
# Per-unit pulsation: the amplitude depends on the occlusion gap and the tube wall of the unit's head
# and tubing set. ASSUMPTION: PULSATION +-10 % uniform per unit. Its phase against the rollers' geometric
# positions (the flow dips as a roller leaves the tube, whose recovery lags) ASSUMPTION: +-5 % of a pass
# per unit. Both are common to the three passes, so a unit's bench profile (profile_ppm) captures them:
# they cost a firmware that assumes an ideal cosine, not one that uses the unit's characterisation.
PULSATION_SPREAD = 0.10
PULSATION_PHASE_PASS = 0.05
# Rotor index: a digital Hall switch (e.g. DRV5011-class latch/switch) faces one magnet per roller and
# gives a rising edge per roller pass, nominally at the pass start (phase 0 of the pulsation cosine).
# Placement error of each magnet, ASSUMPTION +-1.5 % of a pass (1.8 deg) uniform, independent per magnet:
# a pocket position tolerance of +-0.2 mm (FDM print; machined is better) at ~8 mm hub radius is
# +-1.4 deg, and the remanence spread of N35 magnets (+-few %) moves the switch's operate point along the
# field's flank by a further fraction of a degree. The mean over the three magnets is common to every
# pass (the bench profile absorbs it); each magnet's deviation from that mean is not: it shifts that
# pass's profile, an error no characterisation removes. The switch's own operate point is absorbed in
# the placement; its repeatability pass to pass (<< one microstep, 0.09 % of a pass) is neglected.
MAGNET_ERR_PASS = 0.015
# Bench characterisation of a unit's flow profile (profile_ppm): a thermal liquid flow meter in line
# (Sensirion SLI-1000: repeatability 0.5 % of m.v. or 0.02 % FS, response 40 ms, datasheet) at a 20 ms
# step period (45 uL/min), 5 passes averaged per bin. ASSUMPTION 1 % rms per bin: the meter's 0.5 %
# on a pulsed (per-microstep) flow, plus the 5 % step scatter over 5 x 33 steps (0.4 %), rounded up.
# The meter's 40 ms response lags the flow by ~2 steps at 20 ms/step (phase lag w tau = 0.19 % of a
# pass): the measured profile is shifted by that, a systematic error kept in.
PROFILE_NOISE_PPM = 10000
PROFILE_LAG_STEPS = 2
PROFILE_BINS = 32

# ---- line: compliance ---------------------------------------------------------------------------
# Thick-walled elastic tube (Lame, incompressible wall nu = 0.5): dV/dP per length
#   = 2*pi*a^2 * (1.5/E) * b^2/(b^2 - a^2)          a inner, b outer radius, E Young's modulus.
# Silicone elastomer of medical tubing, Shore 50-65A: E ~ 1.5-3 MPa (Gent's relation Shore A -> E);
# we take E = 2 MPa (soft side: more compliance is harder for the detector).
_E_SILICONE_PA = 2.0e6


def _tube_compliance_ul_per_kpa(id_mm, od_mm, length_mm, e_pa=_E_SILICONE_PA):
    a = id_mm / 2.0
    b = od_mm / 2.0
    da_dp_mm2_per_pa = 2.0 * math.pi * a * a * 1.5 / e_pa * (b * b / (b * b - a * a))
    return da_dp_mm2_per_pa * length_mm * 1000.0  # mm^3 = uL; per Pa -> per kPa


# Catheter: intrathecal catheter of the Medtronic InDura/8731SC/Ascenda class: 0.53 mm ID, 1.4 mm OD
# (implant manuals give 0.021 in ID; check the current manual), 89 cm total length (Medtronic product
# page for model 8709SC: "total catheter length 89 cm"). Treated as plain silicone, which is softer than
# the braided Ascenda (more compliance: conservative).
CATH_ID_MM = 0.53
CATH_OD_MM = 1.4
CATH_LEN_MM = 890.0
# Pump tubing from the rollers to the catheter connector through the sensor: 1.02 mm ID, 0.86 mm wall
# (Tygon/PharMed 2-stop tubing), 150 mm (ASSUMPTION: bench layout).
TUBE_ID_MM = 1.02
TUBE_OD_MM = 2.74
TUBE_LEN_MM = 150.0
# Trapped air after priming: 5 uL bubble (ASSUMPTION). Isothermal gas: dV/dP = V/P_abs, P_abs = 101.3 kPa.
AIR_UL = 5.0
COMPLIANCE_UL_PER_KPA = (_tube_compliance_ul_per_kpa(CATH_ID_MM, CATH_OD_MM, CATH_LEN_MM)
                         + _tube_compliance_ul_per_kpa(TUBE_ID_MM, TUBE_OD_MM, TUBE_LEN_MM)
                         + AIR_UL / 101.3)  # ~0.37 + 0.25 + 0.05 = ~0.67 uL/kPa

# ---- line: resistance ---------------------------------------------------------------------------
# Poiseuille: R = 8 mu L / (pi r^4). Viscosity 1.0 mPa s: water at 20 C (a bench at room temperature);
# CSF at 37 C is 0.7-1.0 mPa s (Bloomfield, Johnston, Bilston 1998, Pediatr Neurosurg 28:246); aqueous
# baclofen / morphine solutions are water-like. Pump tubing adds 8 mu L/(pi r^4) at r = 0.51 mm.
VISCOSITY_PA_S = 1.0e-3


def _poiseuille_kpa_s_per_ul(id_mm, length_mm, mu=VISCOSITY_PA_S):
    r = id_mm / 2.0 * 1e-3
    length_m = length_mm * 1e-3
    return 8.0 * mu * length_m / (math.pi * r ** 4) * 1e-9 / 1000.0  # Pa s/m^3 -> kPa per uL/s


RESISTANCE_KPA_S_PER_UL = (_poiseuille_kpa_s_per_ul(CATH_ID_MM, CATH_LEN_MM)
                           + _poiseuille_kpa_s_per_ul(TUBE_ID_MM, TUBE_LEN_MM))  # ~0.47 kPa per uL/s
# Pressure at the catheter tip: lumbar CSF pressure lying down 6-20 cmH2O (normal opening pressure of a
# lumbar puncture, lateral decubitus); on the bench, a tip 10 cm under water in a vial. 10 cmH2O = 981 Pa.
OUTLET_PA = 981.0
# A disconnection at the pump sends the flow into the pocket / onto the bench: a short, open path.
# ASSUMPTION: 1 cm of the 0.53 mm catheter stub remains -> R = 0.005 kPa s/uL; we use that.
DISCONNECT_KPA_S_PER_UL = _poiseuille_kpa_s_per_ul(CATH_ID_MM, 10.0)

# ---- pressure sensor + ADC ----------------------------------------------------------------------
# Honeywell TruStability/Basic ABP analog, 0-15 psi gauge (103.4 kPa), 3.3 V ratiometric, transfer
# 10 %-90 % of supply (ABP series datasheet, "transfer function A"), read by the RP2040 ADC (12 bit,
# 3.3 V reference, ratiometric with the sensor supply).
SENSOR_FSS_PA = 103421.0
ADC_CODES = 4096
CODE_ZERO = 0.1 * ADC_CODES
CODES_PER_PA = 0.8 * ADC_CODES / SENSOR_FSS_PA  # 31.6 Pa per LSB
# Offset and gain error at 25 C after the board's zero at priming: ABP accuracy +-0.25 %FSS BFSL
# (datasheet); we draw offset and gain within that (the zero removes most offset, gain stays).
ACCURACY_FSS = 0.0025
# Temperature: ABP total error band +-1.5 %FSS over 0-50 C (datasheet) -> worst case 0.06 %FSS/C from
# 25 C = 62 Pa/C. Bench air temperature swings +-2 C a day (ASSUMPTION, HVAC lab) -> +-124 Pa diurnal
# offset drift, a slow disturbance the detector must not call an occlusion.
TEMPCO_PA_PER_C = 0.0006 * SENSOR_FSS_PA
DIURNAL_C = 2.0
# ADC noise: 1.36 LSB rms input-referred on a Pico in PWM (low-noise) mode, 0.97 in power-save mode
# (M. Omelchenko's bench characterisation, pico-adc.markomo.me). We double it (ASSUMPTION, conservative)
# for sensor output noise and stepper-driver switching on a real board: 2.7 LSB rms per sample.
ADC_NOISE_LSB = 2.72
# The board oversamples: one reading = mean of 16 conversions (rp2 board driver; change together).
OVERSAMPLE = 16
# RP2040 ADC DNL spikes: codes 512, 1536, 2560, 3584 are ~9 LSB wide (RP2040 datasheet erratum
# RP2040-E11; DNL 8.9 LSB measured at pico-adc.markomo.me). Modelled as a dead band applied before the
# noise, which is harsher than the real dithered effect (conservative).
DNL_CODES = (512, 1536, 2560, 3584)  # = 512 + 1024 k, used in that form in _code_x16
DNL_WIDTH_LSB = 9.0

# ---- reservoir, battery -------------------------------------------------------------------------
# SynchroMed II comes with 20 mL and 40 mL reservoirs (Medtronic); the mock pump uses 20 mL.
RESERVOIR_UL = 20000.0
# Battery: one Li-ion 18650 NMC cell, 3450 mAh (Samsung INR18650-35E datasheet, nominal capacity).
BATTERY_MAH = 3450.0
# Open-circuit voltage vs state of charge, typical NMC 18650 curve at low rate (read off the 0.2 C
# discharge curve of the INR18650-35E datasheet; approximate to +-30 mV).
_OCV = ((0.0, 3000), (0.05, 3350), (0.1, 3480), (0.2, 3610), (0.3, 3660), (0.4, 3700), (0.5, 3750),
        (0.6, 3810), (0.7, 3890), (0.8, 3980), (0.9, 4080), (1.0, 4200))
BATTERY_RINT_OHM = 0.05  # ~35 mOhm AC impedance (datasheet) plus holder/contacts (ASSUMPTION)
# Load: Pico running MicroPython ~25 mA (Raspberry Pi Pico datasheet, power consumption section, order of
# magnitude at VSYS), plus the stepper: ASSUMPTION 0.5 A for 2 ms per microstep = 1 mC per step.
IDLE_MA = 25.0
STEP_MC = 1.0

_INF = float("inf")
_DAY_RAD_PER_MS = 2.0 * math.pi / 86400000.0
_M32 = 0xFFFFFFFF


class XorShift32:
    """Tiny deterministic PRNG (Marsaglia 2003): same sequence on CPython and MicroPython, whose random
    modules seed differently. 32-bit state stays a small int on the unix port."""

    def __init__(self, seed):
        s = (seed * 2654435761 + 0x9E3779B9) & _M32
        self.s = s or 0x6D2B79F5
        self._spare = None

    def next32(self):
        x = self.s
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.s = x
        return x

    def uniform(self):
        """In (0, 1): never exactly 0, so log() is safe."""
        return ((self.next32() >> 8) + 0.5) / 16777216.0

    def gauss(self):
        """Standard normal, Box-Muller (both values used; 24-bit uniforms: tails to 5.8 sigma)."""
        g = self._spare
        if g is not None:
            self._spare = None
            return g
        x = self.s
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        y = x
        y ^= (y << 13) & _M32
        y ^= y >> 17
        y ^= (y << 5) & _M32
        self.s = y
        r = math.sqrt(-2.0 * math.log(((x >> 8) + 0.5) / 16777216.0))
        t = _TWO_PI_24 * (y >> 8)
        self._spare = r * math.sin(t)
        return r * math.cos(t)


_TWO_PI_24 = 2.0 * math.pi / 16777216.0


def _phi(a):
    """(1 - exp(-a)) / a, exact and stable for a -> 0 (no 0/0 when the line is fully occluded)."""
    if a < 1e-8:
        return 1.0 - 0.5 * a
    return -math.expm1(-a) / a


FAULTS = ("occlusion", "leak", "disconnect", "stall", "slip", "sensor", "reservoir_empty", "battery",
          "backpressure")


class Plant:
    """The simulated pump hardware and patient line. Time advances only through step().

    Units: dt in ms, pressures in Pa (gauge), volumes in uL (floats), steps are motor microsteps.
    """

    def __init__(self, seed=1, pl_per_step=NOMINAL_PL_PER_STEP, compliance_ul_per_kpa=None,
                 resistance_kpa_s_per_ul=None, outlet_pa=OUTLET_PA, reservoir_ul=RESERVOIR_UL,
                 pulsation=PULSATION, step_scatter=STEP_SCATTER, unit_bias=None,
                 adc_noise_lsb=ADC_NOISE_LSB, diurnal_c=DIURNAL_C, dnl_width_lsb=DNL_WIDTH_LSB,
                 battery_soc=1.0, pulsation_spread=None, pulsation_phase_steps=None, magnet_err_steps=None):
        self.seed = seed
        self.rng = XorShift32(seed)
        self._noise = XorShift32(seed ^ 0x5A5A5A5A)  # sensor noise: own stream, reads don't shift physics
        # The rotor's per-unit geometry (spread, phase, magnets: all drawn always, so passing one shifts no
        # other) from its own stream, so the figures drawn before it keep their values for a seed.
        # The Hall switch fires as the rotor reaches the magnets' angles (whole microsteps), one per roller.
        h = XorShift32(seed ^ 0x3C3C3C3C)
        spp = STEPS_PER_REV / ROLLERS
        spread = (2.0 * h.uniform() - 1.0) * PULSATION_SPREAD
        if pulsation_spread is not None:
            spread = pulsation_spread
        x = (2.0 * h.uniform() - 1.0) * PULSATION_PHASE_PASS * spp
        self.pulsation_phase_steps = x if pulsation_phase_steps is None else pulsation_phase_steps
        mags = []
        errs = []
        for k in range(ROLLERS):
            x = (2.0 * h.uniform() - 1.0) * MAGNET_ERR_PASS * spp
            if magnet_err_steps is not None:
                x = magnet_err_steps[k]
            errs.append(x)
            mags.append(int(math.floor(k * spp + x + 0.5)) % STEPS_PER_REV)
        self.magnet_err_steps = errs  # each magnet's placement error, in microsteps of rotor angle
        self.magnets = mags
        self.index_edges = 0  # rising edges of the Hall switch (rotor turns only: none during a stall)
        rng = self.rng
        if unit_bias is None:
            unit_bias = (2.0 * rng.uniform() - 1.0) * UNIT_BIAS_MAX
        self.unit_bias = unit_bias
        self.ul_per_step = pl_per_step * 1e-6 * (1.0 + unit_bias)  # true mean volume per step
        self.c = COMPLIANCE_UL_PER_KPA if compliance_ul_per_kpa is None else compliance_ul_per_kpa
        self.c_ul_per_pa = self.c / 1000.0
        r = RESISTANCE_KPA_S_PER_UL if resistance_kpa_s_per_ul is None else resistance_kpa_s_per_ul
        self.r_nominal = r
        self.g0 = 1.0 / (r * 1000.0)  # uL/s per Pa
        self.outlet0 = outlet_pa
        self.pulsation = pulsation * (1.0 + spread)  # this unit's amplitude
        self.step_scatter = step_scatter
        # sensor: per-unit offset / gain error within the datasheet accuracy, temperature phase
        self.s_offset_pa = (2.0 * rng.uniform() - 1.0) * ACCURACY_FSS * SENSOR_FSS_PA  # no zeroing assumed
        self.s_gain = 1.0 + (2.0 * rng.uniform() - 1.0) * ACCURACY_FSS * 2.0
        self.s_sigma_codes = adc_noise_lsb / math.sqrt(OVERSAMPLE)
        self.diurnal_pa = diurnal_c * TEMPCO_PA_PER_C
        self.diurnal_phase = 2.0 * math.pi * rng.uniform()
        self.dnl_half = dnl_width_lsb / 2.0
        self.rotor_step = int(rng.uniform() * STEPS_PER_REV)
        # state
        self.t_ms = 0
        self.p = outlet_pa  # primed line at rest: equal to the tip pressure
        self.reservoir = reservoir_ul
        self.pumped_ul = 0.0  # fluid moved by the rollers into the line
        self.delivered_ul = 0.0  # out through the catheter tip (falls when the line drops below the tip
        # pressure with a leak open: CSF / drug drawn back up the catheter)
        self.leaked_ul = 0.0  # out through a leak / disconnection
        self.steps_in = 0  # pulses the driver received
        self.steps_moved = 0  # steps the rotor actually turned
        self.soc = battery_soc
        self.extra_ma = 0.0
        self.last_ma = IDLE_MA
        self._stuck_reading = None
        self.faults = {}
        self._ck = (-1, 0.0, 0.0, 0.0, 0.0, 0.0)
        self._apply()

    # ---- faults ---------------------------------------------------------------------------------
    def inject(self, fault, **kw):
        """Start a fault. occlusion(k=inf | factor on R), leak(r_kpa_s_per_ul=...), disconnect(),
        stall(diag=True), slip(), sensor(mode='stuck'|'open'|'short'), reservoir_empty(),
        battery(soc=..., drain_ma=...), backpressure(pa=...)."""
        if fault not in FAULTS:
            raise ValueError("unknown fault %r (known: %s)" % (fault, ", ".join(FAULTS)))
        if fault == "occlusion":
            k = kw.get("k", _INF)
            if not k >= 1.0:
                raise ValueError("occlusion k must be >= 1 (factor on the catheter resistance) or inf")
            kw = {"k": k}
        elif fault == "leak":
            r = kw.get("r_kpa_s_per_ul", DISCONNECT_KPA_S_PER_UL * 10.0)
            if not r > 0:
                raise ValueError("leak r_kpa_s_per_ul must be > 0")
            kw = {"r_kpa_s_per_ul": r}
        elif fault == "stall":
            kw = {"diag": bool(kw.get("diag", True))}
        elif fault == "sensor":
            mode = kw.get("mode", "stuck")
            if mode not in ("stuck", "open", "short"):
                raise ValueError("sensor mode must be stuck, open or short")
            kw = {"mode": mode}
            self._stuck_reading = None
        elif fault == "reservoir_empty":
            self.reservoir = 0.0
        elif fault == "battery":
            if "soc" in kw:
                soc = kw["soc"]
                if not 0.0 <= soc <= 1.0:
                    raise ValueError("battery soc must be within 0..1")
                self.soc = soc
            self.extra_ma = float(kw.get("drain_ma", 0.0))
            return
        elif fault == "backpressure":
            kw = {"pa": float(kw.get("pa", OUTLET_PA))}
        self.faults[fault] = kw
        self._apply()

    def clear(self, fault=None):
        """End one fault (or all). The line keeps its pressure: an occlusion that clears releases the
        stored volume as a bolus through the catheter, as it would in a patient."""
        if fault is None:
            self.faults = {}
            self.extra_ma = 0.0
        else:
            self.faults.pop(fault, None)
            if fault == "battery":
                self.extra_ma = 0.0
        self._apply()

    def set_faults(self, faults):
        """The faults of a snapshot (simhw.py) in force at once, replacing any others."""
        self.faults = faults
        self._apply()

    def _apply(self):
        f = self.faults
        g = self.g0
        if "occlusion" in f:
            k = f["occlusion"]["k"]
            g = 0.0 if k == _INF else g / k
        gl = 0.0
        if "leak" in f:
            gl = 1.0 / (f["leak"]["r_kpa_s_per_ul"] * 1000.0)
        if "disconnect" in f:
            g = 0.0  # nothing reaches the tip
            gl += 1.0 / (DISCONNECT_KPA_S_PER_UL * 1000.0)
        self.gc = g
        self.gl = gl
        self.outlet = f["backpressure"]["pa"] if "backpressure" in f else self.outlet0

    # ---- physics --------------------------------------------------------------------------------
    def _volume_for(self, n):
        """Fluid moved by n rotor steps, from the current rotor angle and back pressure."""
        if n <= 0:
            return 0.0
        spp = STEPS_PER_REV / ROLLERS  # steps per roller pass
        a = self.rotor_step
        b = a + n
        v = float(n)
        if self.pulsation:
            # integral of (1 + A cos(2 pi (s - phase) / spp)) ds from a to b
            w = 2.0 * math.pi / spp
            ph = self.pulsation_phase_steps
            v += self.pulsation / w * (math.sin(w * (b - ph)) - math.sin(w * (a - ph)))
        if self.step_scatter:
            v += self.step_scatter * math.sqrt(n) * self.rng.gauss()
        self._turn(n)
        v *= self.ul_per_step * (1.0 - SLIP_PER_PA * max(self.p, 0.0))
        return max(v, 0.0)

    def _turn(self, n):
        """The rotor turns n microsteps: count the index edges it crosses (exact for any n)."""
        a = self.rotor_step
        b = a + n
        e = 0
        for m in self.magnets:  # edges at m + k STEPS_PER_REV with a < . <= b
            e += (b - m) // STEPS_PER_REV - (a - m) // STEPS_PER_REV
        self.index_edges += e
        self.rotor_step = b % STEPS_PER_REV

    def profile_ppm(self, bins=PROFILE_BINS, noise_ppm=PROFILE_NOISE_PPM, lag_steps=PROFILE_LAG_STEPS):
        """This unit's flow profile as its bench characterisation gives it: `bins` ints, bin j = the mean
        volume of the steps j*spp/bins <= i < (j+1)*spp/bins after an index edge (i = 0 is the step that
        leaves the edge's angle), averaged over the three magnets' passes, relative to the mean, in ppm.
        The exact bin means of the true per-step volume, then the flow meter's lag and error per bin
        (PROFILE_*), relative to the measured mean. Deterministic per seed (its own stream)."""
        w = 2.0 * math.pi * ROLLERS / STEPS_PER_REV
        ph = self.pulsation_phase_steps + lag_steps
        k = self.pulsation / w / ROLLERS
        rb = ROLLERS * bins
        g = XorShift32(self.seed ^ 0x0F0F0F0F)
        out = []
        tot = 0.0
        lo = 0
        for j in range(bins):
            hi = ((j + 1) * STEPS_PER_REV + rb - 1) // rb  # the bin's steps: lo = ceil(j spp / bins) .. hi - 1
            v = float(hi - lo)
            for m in self.magnets:  # the integral of 1 + A cos over them, mean of the three passes
                v += k * (math.sin(w * (m + hi - ph)) - math.sin(w * (m + lo - ph)))
            v *= 1.0 + noise_ppm * 1e-6 * g.gauss()
            tot += v
            out.append(v / (hi - lo))
            lo = hi
        tot /= lo  # the measured mean volume per step
        for j in range(bins):
            out[j] = int(math.floor((out[j] / tot - 1.0) * 1e6 + 0.5))
        return out

    def step(self, dt_ms, steps=0):
        """Advance dt_ms with `steps` microsteps pulsed evenly over the interval. Returns the steps the
        rotor actually turned (0 during a stall)."""
        if dt_ms < 0 or steps < 0:
            raise ValueError("dt_ms and steps must be >= 0")
        moved = steps
        v = 0.0
        if steps:
            f = self.faults
            if "stall" in f:
                moved = 0
            elif "slip" in f:
                self._turn(moved)
            else:
                v = self._volume_for(moved)
                if v > self.reservoir:  # pumping air from an empty reservoir moves no drug
                    v = self.reservoir
                self.reservoir -= v
            self.steps_in += steps
            self.steps_moved += moved
            self.pumped_ul += v
        self.t_ms += dt_ms
        if dt_ms > 0:
            self._line(v, dt_ms)
        else:  # an instantaneous step (dt 0): the compliance takes all of it
            self.p += v / self.c_ul_per_pa
        # battery: idle load plus the step charge
        dt_h = dt_ms / 3600000.0
        mah = (IDLE_MA + self.extra_ma) * dt_h + steps * STEP_MC / 3600.0
        self.last_ma = mah / dt_h if dt_ms else IDLE_MA + self.extra_ma
        soc = self.soc - mah / BATTERY_MAH
        self.soc = soc if soc > 0.0 else 0.0
        return moved

    def _coeffs(self, dt_ms):
        """Per-(dt, line state) constants of the exact solution, cached: the tick is usually fixed."""
        c = self.c_ul_per_pa
        g = self.gc + self.gl
        dt = dt_ms / 1000.0
        a = g * dt / c
        ph = _phi(a)
        k1 = dt * ph / c  # P gain per unit of drive
        if a < 1e-6:
            k2 = dt * dt / (2.0 * c) * (1.0 - a / 3.0)  # integral of P per unit of drive, g -> 0
        else:
            k2 = (dt - dt * ph) / g
        self._ck = (dt_ms, self.gc, self.gl, dt, k1, k2)
        return self._ck

    def _line(self, v, dt_ms):
        """Exact solution of C dP/dt = q - gc (P - Pout) - gl P over dt, q = v/dt constant:
        P(t) = p0 + drive * t * phi(g t / c) / c, drive = q - g p0 + gc Pout, phi(a) = (1 - e^-a)/a;
        integral of P over [0, dt] = p0 dt + drive (dt - dt phi) / g (-> drive dt^2 / 2c as g -> 0)."""
        ck = self._ck
        if ck[0] != dt_ms or ck[1] != self.gc or ck[2] != self.gl:
            ck = self._coeffs(dt_ms)
        dt = ck[3]
        gc = ck[1]
        p0 = self.p
        drive = v / dt - (gc + ck[2]) * p0 + gc * self.outlet
        ip = p0 * dt + drive * ck[5]
        if gc:
            self.delivered_ul += gc * (ip - self.outlet * dt)
        if ck[2]:
            self.leaked_ul += ck[2] * ip
        self.p = p0 + drive * ck[4]

    def stored_ul(self):
        """Volume held in the line's compliance above its unpressurised state at the tip pressure."""
        return self.c_ul_per_pa * (self.p - self.outlet0)

    # ---- sensors --------------------------------------------------------------------------------
    def true_pressure_pa(self):
        return self.p

    def _code_x16(self):
        """ADC reading as the board's oversampling gives it: mean of OVERSAMPLE codes, times 16."""
        if self.faults:
            mode = self.faults.get("sensor", {}).get("mode")
            if mode == "open":
                return 0  # pull-down on an open sensor wire
            if mode == "short":
                return (ADC_CODES - 1) * 16
            if mode == "stuck" and self._stuck_reading is not None:
                return self._stuck_reading
        else:
            mode = None
        drift = self.diurnal_pa * math.sin(self.t_ms * _DAY_RAD_PER_MS + self.diurnal_phase)
        x = CODE_ZERO + (self.p * self.s_gain + self.s_offset_pa + drift) * CODES_PER_PA
        h = self.dnl_half
        if h:
            s = ((int(x) >> 10) << 10) + 512  # the spike at 512 + 1024 k nearest below/at x's kilo-code
            if s - h < x < s + h:
                x = float(s)
        x += self.s_sigma_codes * self._noise.gauss()
        n = int(x * OVERSAMPLE + 0.5) if x > 0 else 0
        if n > (ADC_CODES - 1) * OVERSAMPLE:
            n = (ADC_CODES - 1) * OVERSAMPLE
        if mode == "stuck":
            self._stuck_reading = n
        return n

    def adc_x16(self):
        """Raw oversampled ADC reading (sum of 16 codes), what the board's ADC driver produces."""
        return self._code_x16()

    def pressure_pa(self):
        """Reading in Pa through the nominal transfer function (what the board's driver reports).
        Raises ValueError outside the sensor's valid output band (open or shorted sensor)."""
        return code_x16_to_pa(self._code_x16())

    def motor_diag(self):
        """Driver DIAG output (TMC2209 StallGuard): high during a detected stall."""
        st = self.faults.get("stall")
        return bool(st and st["diag"])

    # ---- battery --------------------------------------------------------------------------------
    def battery_mv(self):
        soc = self.soc
        ocv = _OCV[0][1]
        for i in range(1, len(_OCV)):
            s1, v1 = _OCV[i]
            if soc <= s1:
                s0, v0 = _OCV[i - 1]
                ocv = v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
                break
        return int(ocv - self.last_ma * BATTERY_RINT_OHM)

    def reservoir_ul(self):
        return self.reservoir


def code_x16_to_pa(n):
    """Board driver conversion: oversampled code (x16) -> Pa, nominal transfer. ValueError outside
    5-95 % of supply (the ABP's diagnostic bands: open / shorted sensor)."""
    if n < 0.05 * ADC_CODES * OVERSAMPLE or n > 0.95 * ADC_CODES * OVERSAMPLE:
        raise ValueError("pressure ADC reading %d outside the sensor's 5-95%% band" % n)
    return int(math.floor((n / OVERSAMPLE - CODE_ZERO) / CODES_PER_PA + 0.5))
