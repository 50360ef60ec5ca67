# Prescriptions and the therapy they describe. The device validates every prescription here; the host
# validates with this same module before sending (it never reimplements it).
#
# A prescription is a plain JSON-able dict (all ints, doses in ng, see drugs.py for why):
#   {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 250000,
#    "mode": "continuous", "dose_ng_per_day": 1000000,                  # continuous
#    "mode": "flex", "flex": [{"start_min": 0, "dose_ng_per_day": 400000}, ...],   # up to 10 steps
#    "mode": "periodic", "dose_ng_per_day": 0,                         # background (0 allowed) plus
#       "periodic": {"dose_ng": 200000, "every_h": 6, "start_min": 0, "duration_min": 30},
#    "patient_bolus": {"dose_ng": 50000, "duration_min": 10, "lockout_min": 120, "max_per_day": 4}}
# A prescription outside any limit is refused whole with a LimitError naming the field, value and limit.
#
# Per tick (through dosing.Dosing, see there) the therapy answers the basal and bolus rates now; dosing
# reports back the whole nL it programmed (programmed()), which ends boluses and the bridge exactly at
# their volume. The per-tick calls allocate nothing.
from micropython import const

from itpump import LimitError, drugs
from itpump.drugs import (
    MAX_BASAL_NL_PER_DAY,
    MAX_BOLUS_NL,
    MAX_CATHETER_NL,
    MAX_DAILY_NL,
    MAX_RATE_NL_PER_H,
    MIN_BASAL_NL_PER_DAY,
    MIN_BASAL_NL_PER_H,
)

DAY_MS = const(86400000)  # a day of time-of-day ms (< 2**30)
_MIN_PER_DAY = const(1440)
_MAX_FLEX_STEPS = const(10)
_MAX_PATIENT_PER_DAY = const(24)
_DAY_S = const(86400)
PERIODS_H = (1, 2, 3, 4, 6, 8, 12, 24)  # divide the day: every bolus falls at the same time each day

MODES = ("continuous", "flex", "periodic")

# bolus kinds
CLINICIAN = "clinician"
PATIENT = "patient"
PERIODIC = "periodic"
PRIMING = "priming"

# refusal codes of a bolus request (returned as (code, message); the caller logs them)
R_NOT_PROGRAMMED = "NOT_PROGRAMMED"
R_SUSPENDED = "SUSPENDED"
R_BRIDGE = "BRIDGE"
R_BUSY = "BUSY"
R_LOCKOUT = "LOCKOUT"
R_MAX_PER_DAY = "MAX_PER_DAY"
R_LIMIT = "LIMIT"

_TOP = ("drug", "conc_ug_per_ml", "catheter_volume_nl", "mode", "dose_ng_per_day", "flex", "periodic",
        "patient_bolus")
_FLEX = ("start_min", "dose_ng_per_day")
_PERIODIC = ("dose_ng", "every_h", "start_min", "duration_min")
_PATIENT = ("dose_ng", "duration_min", "lockout_min", "max_per_day")


# -- integer conversions (exact, rounding stated) ------------------------------------------------
def rate_nl_per_h(dose_ng_per_day, conc_ug_per_ml):
    """Dose rate -> flow, rounded to the nearest nL/h. ng/day * 1000 / (ug/mL) = nL/day; / 24 -> nL/h."""
    return (dose_ng_per_day * 250 + 3 * conc_ug_per_ml) // (6 * conc_ug_per_ml)


def volume_nl(dose_ng, conc_ug_per_ml):
    """Dose -> volume, rounded to the nearest nL (1 ng at 1 ug/mL is 1000 nL)."""
    return (dose_ng * 2000 + conc_ug_per_ml) // (2 * conc_ug_per_ml)


def bolus_rate_nl_per_h(vol_nl, duration_min):
    """Rounded up: a bolus never takes longer than its programmed duration."""
    return (vol_nl * 60 + duration_min - 1) // duration_min


# -- validation helpers ---------------------------------------------------------------------------
def _dict(v, field):
    if type(v) is not dict:
        raise LimitError(field, v, "a table", "must be")
    return v


def _keys(d, allowed, path):
    for k in d:
        if k not in allowed:
            raise LimitError(path + k, d[k], allowed, "unknown field; allowed")


def _int(d, key, lo, hi, path="", what=""):
    field = path + key
    if key not in d:
        raise LimitError(field, None, "an integer", "missing, must be")
    v = d[key]
    if type(v) is not int:
        raise LimitError(field, v, "an integer", "must be")
    if v < lo:
        raise LimitError(field, v, lo, "below the minimum%s" % what)
    if v > hi:
        raise LimitError(field, v, hi, "above the maximum%s" % what)
    return v


def _ceil_div(a, b):
    return -(-a // b)


def _check_basal_volume(field, dose, conc):
    """A basal dose (ng/day) against the device's basal volume range, on the exact daily volume
    (dose * 1000 / conc nL; never a rounded rate). The limit is named as a dose."""
    if dose and dose * 1000 < MIN_BASAL_NL_PER_DAY * conc:
        raise LimitError(field, dose, _ceil_div(MIN_BASAL_NL_PER_DAY * conc, 1000),
                         "gives %d nL/day (%d nL/h), under the device minimum %d nL/day; minimum"
                         % (dose * 1000 // conc, rate_nl_per_h(dose, conc), MIN_BASAL_NL_PER_DAY))
    if dose * 1000 > MAX_BASAL_NL_PER_DAY * conc:
        raise LimitError(field, dose, MAX_BASAL_NL_PER_DAY * conc // 1000,
                         "gives %d nL/day (%d nL/h), over the basal maximum %d nL/day; maximum"
                         % (_ceil_div(dose * 1000, conc), rate_nl_per_h(dose, conc), MAX_BASAL_NL_PER_DAY))


class _Bolus:
    """A programmed bolus (periodic or patient): volume and rate precomputed at programming time."""

    def __init__(self, d, path, conc, dose_max, basal_max_rate, max_duration_min):
        self.lockout_s = 0  # patient boluses only
        self.max_per_day = 0
        self.dose_ng = _int(d, "dose_ng", 1, dose_max, path, " daily dose of the drug")
        self.duration_min = _int(d, "duration_min", 1, max_duration_min, path)
        self.volume_nl = _check_volume(self.dose_ng, conc, path + "dose_ng")
        self.rate_nl_per_h = _check_rate(self.volume_nl, self.duration_min, basal_max_rate,
                                         path + "duration_min")


def _check_volume(dose_ng, conc, field):
    v = volume_nl(dose_ng, conc)
    if v < 1:
        raise LimitError(field, dose_ng, (conc + 1999) // 2000, "under 1 nL at this concentration; minimum")
    if dose_ng * 1000 > MAX_BOLUS_NL * conc:  # the exact volume: the rounded one may sit at the limit
        raise LimitError(field, dose_ng, MAX_BOLUS_NL * conc // 1000,
                         "over the %d nL bolus volume limit; maximum" % MAX_BOLUS_NL)
    return v


def _check_rate(vol, duration_min, basal_max_rate, field):
    r = bolus_rate_nl_per_h(vol, duration_min)
    if r + basal_max_rate > MAX_RATE_NL_PER_H:
        room = MAX_RATE_NL_PER_H - basal_max_rate
        raise LimitError(field, duration_min, (vol * 60 + room - 1) // room,
                         "too short: %d nL/h plus basal is over the device maximum %d nL/h; minimum"
                         % (r, MAX_RATE_NL_PER_H))
    return r


class Therapy:
    """A validated prescription and the delivery state it drives (boluses, bridge, lockouts)."""

    def __init__(self, rx):
        _dict(rx, "prescription")
        _keys(rx, _TOP, "")
        drug = rx.get("drug")
        if drug not in drugs.DRUGS:
            raise LimitError("drug", drug, drugs.names(), "unknown; one of")
        lim = drugs.limits(drug)
        self.drug = drug
        conc = self.conc_ug_per_ml = _int(rx, "conc_ug_per_ml", lim[0], lim[1], "", " for " + drug)
        self.catheter_volume_nl = _int(rx, "catheter_volume_nl", 1, MAX_CATHETER_NL)
        mode = self.mode = rx.get("mode")
        if mode not in MODES:
            raise LimitError("mode", mode, MODES, "unknown; one of")
        for k, m in (("flex", "flex"), ("periodic", "periodic")):
            if k in rx and mode != m:
                raise LimitError(k, rx[k], m, "only allowed with mode")
        if "dose_ng_per_day" in rx and mode == "flex":
            raise LimitError("dose_ng_per_day", rx["dose_ng_per_day"], "flex", "not allowed with mode")

        # basal table: step start (ms of day) -> rate
        if mode == "flex":
            steps = rx.get("flex")
            if type(steps) is not list or not 1 <= len(steps) <= _MAX_FLEX_STEPS:
                raise LimitError("flex", steps, _MAX_FLEX_STEPS, "must be a list of 1 to")
            starts = []  # type: list[int]
            doses = []  # type: list[int]
            fields = []  # type: list[str]
            for i, s in enumerate(steps):
                path = "flex[%d]." % i
                _dict(s, path[:-1])
                _keys(s, _FLEX, path)
                lo = 0 if i == 0 else starts[-1] // 60000 + 1
                hi = 0 if i == 0 else _MIN_PER_DAY - 1  # the first step starts at midnight
                starts.append(_int(s, "start_min", lo, hi, path) * 60000)
                doses.append(_int(s, "dose_ng_per_day", 1, lim[3], path, " for " + drug))
                fields.append(path + "dose_ng_per_day")
        else:
            zero_ok = 0 if mode == "periodic" else 1
            starts, doses = [0], [_int(rx, "dose_ng_per_day", zero_ok, lim[3], "", " for " + drug)]
            fields = ["dose_ng_per_day"]
        rates = []
        for i in range(len(doses)):
            _check_basal_volume(fields[i], doses[i], conc)
            rates.append(rate_nl_per_h(doses[i], conc))
        self.starts_ms = starts
        self.rates = rates
        self.doses = doses
        basal_max = max(rates)

        # daily totals: basal over each step's share of the day, then boluses. day_vol is what the pump
        # delivers (rounded rates and bolus volumes); the volume limit is checked on the exact volume.
        dose_min_x1440 = 0  # ng/day * min
        vol_nl_x60 = 0  # nL/h * min
        for i in range(len(starts)):
            end = starts[i + 1] if i + 1 < len(starts) else DAY_MS
            mins = (end - starts[i]) // 60000
            dose_min_x1440 += doses[i] * mins
            vol_nl_x60 += rates[i] * mins
        day_dose = dose_min_x1440 // _MIN_PER_DAY
        day_vol = vol_nl_x60 // 60
        bolus_ng = 0  # boluses at their daily maximum, ng

        self.periodic = None
        self._period_ms = 0
        self._p_start_ms = 0
        if mode == "periodic":
            p = _dict(rx.get("periodic"), "periodic")
            _keys(p, _PERIODIC, "periodic.")
            every = _int(p, "every_h", 1, 24, "periodic.")
            if every not in PERIODS_H:
                raise LimitError("periodic.every_h", every, PERIODS_H, "must divide the day; one of")
            start = _int(p, "start_min", 0, _MIN_PER_DAY - 1, "periodic.")
            pb = self.periodic = _Bolus(p, "periodic.", conc, lim[3], basal_max, every * 60 - 1)
            self._period_ms = every * 3600000
            self._p_start_ms = start * 60000
            n = 24 // every
            day_dose += n * pb.dose_ng
            day_vol += n * pb.volume_nl
            bolus_ng += n * pb.dose_ng
        if day_dose < lim[2]:
            raise LimitError("total_ng_per_day", day_dose, lim[2], "below the minimum daily dose of " + drug)

        self.patient = None
        if "patient_bolus" in rx:
            p = _dict(rx["patient_bolus"], "patient_bolus")
            _keys(p, _PATIENT, "patient_bolus.")
            pb = self.patient = _Bolus(p, "patient_bolus.", conc, lim[3], basal_max, _MIN_PER_DAY)
            pb.lockout_s = 60 * _int(p, "lockout_min", pb.duration_min, _MIN_PER_DAY, "patient_bolus.",
                                     " (no shorter than the bolus itself)")
            pb.max_per_day = _int(p, "max_per_day", 1, _MAX_PATIENT_PER_DAY, "patient_bolus.")
            day_dose += pb.max_per_day * pb.dose_ng
            day_vol += pb.max_per_day * pb.volume_nl
            bolus_ng += pb.max_per_day * pb.dose_ng
        if day_dose > lim[3]:
            raise LimitError("total_ng_per_day", day_dose, lim[3],
                             "basal + boluses over the maximum daily dose of " + drug)
        # exact daily volume = (dose_min_x1440 / 1440 + bolus_ng) * 1000 / conc nL, compared in integers
        exact_x = (dose_min_x1440 + bolus_ng * _MIN_PER_DAY) * 1000  # nL * conc * 1440
        if exact_x > MAX_DAILY_NL * conc * _MIN_PER_DAY:
            raise LimitError("total_nl_per_day", _ceil_div(exact_x, conc * _MIN_PER_DAY), MAX_DAILY_NL,
                             "basal + boluses over the device daily volume maximum")
        self.day_dose_ng = day_dose
        self.day_volume_nl = day_vol
        self.basal_max_nl_per_h = basal_max
        self._rx = _copy(rx)

        # state
        self.suspended = False
        self.bolus_kind = None  # one of the kinds above while a bolus runs
        self.bolus_rate = 0  # nL/h
        self.bolus_left_nl = 0
        self.bolus_volume_nl = 0
        self.bridge_left_nl = 0
        self._b_starts = starts
        self._b_rates = rates
        self._b_conc = 0  # old concentration while bridging the same drug, 0 otherwise
        self.seg_end_ms = DAY_MS  # set by basal_nl_per_h(): end of the schedule segment it answered for
        self._p_slot = -1
        self.periodic_pending = False
        self.periodic_skipped = 0
        n = self.patient.max_per_day if self.patient else 0
        self._pt_times = [0] * n  # ring of accepted patient bolus times (monotonic s)
        self._pt_count = 0
        self._pt_i = 0

    # -- dicts out -------------------------------------------------------------------------------
    def prescription(self):
        return _copy(self._rx)

    def summary(self):
        """Derived figures for display and diff (host and status)."""
        s = {"drug": self.drug, "conc_ug_per_ml": self.conc_ug_per_ml, "mode": self.mode,
             "basal_nl_per_h": list(self.rates), "day_dose_ng": self.day_dose_ng,
             "day_volume_nl": self.day_volume_nl}
        if self.periodic:
            s["periodic_volume_nl"] = self.periodic.volume_nl
            s["periodic_rate_nl_per_h"] = self.periodic.rate_nl_per_h
        if self.patient:
            s["patient_volume_nl"] = self.patient.volume_nl
            s["patient_rate_nl_per_h"] = self.patient.rate_nl_per_h
        return s

    def status(self):
        return {"suspended": self.suspended, "bolus": self.bolus_kind, "bolus_left_nl": self.bolus_left_nl,
                "bridge_left_nl": self.bridge_left_nl, "periodic_pending": self.periodic_pending,
                "periodic_skipped": self.periodic_skipped}

    def peak_basal_nl_per_h(self):
        """The highest basal of the schedule, the bridge's included (what the reserve mark covers)."""
        r = self.basal_max_nl_per_h
        for x in self._b_rates:
            if x > r:
                r = x
        return r

    def next_change(self, tod_ms):
        """The schedule's next change after tod_ms: a flex step or a periodic bolus (None for a flat
        basal), for status."""
        if self.mode == "flex" and len(self.starts_ms) > 1:
            s = self.starts_ms
            i = len(s) - 1
            while s[i] > tod_ms:
                i -= 1
            j = (i + 1) % len(s)
            return {"at_min": s[j] // 60000, "in_min": ((s[j] - tod_ms) % DAY_MS + 59999) // 60000,
                    "rate_nl_per_h": self.rates[j]}
        if self.periodic is not None:
            per = self._period_ms
            k = (tod_ms - self._p_start_ms) % DAY_MS // per + 1
            at = (self._p_start_ms + k * per) % DAY_MS
            return {"at_min": at // 60000, "in_min": ((at - tod_ms) % DAY_MS + 59999) // 60000,
                    "bolus_nl": self.periodic.volume_nl}
        return None

    # -- per tick (no allocation) ----------------------------------------------------------------
    def basal_nl_per_h(self, tod_ms):
        """Basal rate at a time of day (ms since midnight); sets seg_end_ms to when it next changes."""
        if self.bridge_left_nl > 0:
            starts, rates = self._b_starts, self._b_rates
        else:
            starts, rates = self.starts_ms, self.rates
        i = len(starts) - 1
        while starts[i] > tod_ms:
            i -= 1
        self.seg_end_ms = starts[i + 1] if i + 1 < len(starts) else DAY_MS
        if self.suspended or self.bolus_kind == PRIMING:
            return 0  # priming pushes the catheter volume instead of the basal
        return rates[i]

    def bolus_nl_per_h(self):
        return self.bolus_rate if self.bolus_kind is not None else 0

    def rate_nl_per_h(self, tod_ms):
        """Target total rate now: basal (through the old concentration while bridging) plus bolus."""
        return self.basal_nl_per_h(tod_ms) + self.bolus_nl_per_h()

    def programmed(self, basal_nl, bolus_nl):
        """Dosing reports the whole nL it programmed this tick; ends the bridge and boluses at volume."""
        if self.bridge_left_nl > 0:
            self.bridge_left_nl -= basal_nl + (bolus_nl if self.bolus_kind != PRIMING else 0)
            if self.bridge_left_nl < 0:
                self.bridge_left_nl = 0
        if self.bolus_kind is not None:
            self.bolus_left_nl -= bolus_nl
            if self.bolus_left_nl <= 0:
                self.bolus_left_nl = 0
                self.bolus_kind = None

    def update(self, tod_ms):
        """Once per tick: periodic bolus slots (each start+k*every_h) and starting a pending one."""
        pb = self.periodic
        if pb is not None:
            slot = ((tod_ms - self._p_start_ms) % DAY_MS) // self._period_ms
            if slot != self._p_slot:
                first = self._p_slot < 0  # programming mid-slot does not fire at once
                self._p_slot = slot
                if not first:
                    if self.suspended or self.periodic_pending:
                        self.periodic_skipped += 1
                    else:
                        self.periodic_pending = True
            if self.periodic_pending and self.bolus_kind is None and not self.suspended:
                if self.bridge_left_nl == 0:
                    self.periodic_pending = False
                    self._start(PERIODIC, pb.volume_nl, pb.rate_nl_per_h)
                elif self._b_conc:
                    self.periodic_pending = False
                    if self._bridge_bolus(PERIODIC, pb) is not None:
                        self.periodic_skipped += 1

    # -- events (may allocate) -------------------------------------------------------------------
    def _start(self, kind, vol, rate):
        self.bolus_kind = kind
        self.bolus_volume_nl = self.bolus_left_nl = vol
        self.bolus_rate = rate

    def _can_start(self):
        if self.suspended:
            return (R_SUSPENDED, "delivery is suspended")
        if self.bolus_kind is not None:
            return (R_BUSY, "a %s bolus is running, %d nL left" % (self.bolus_kind, self.bolus_left_nl))
        return None

    def _bridge_bolus(self, kind, b):
        """A dose while the catheter still holds the old concentration (same drug): the first
        bridge_left_nl of it flows at the old concentration, the rest at the new one. The basal flowing
        alongside is neglected (second order over a bolus' minutes)."""
        old = self._b_conc
        vol = volume_nl(b.dose_ng, old)
        if vol > self.bridge_left_nl:
            rest_ng = b.dose_ng - self.bridge_left_nl * old // 1000
            vol = self.bridge_left_nl + volume_nl(rest_ng, self.conc_ug_per_ml)
        rate = bolus_rate_nl_per_h(vol, b.duration_min)
        if vol > MAX_BOLUS_NL or rate + self.basal_max_nl_per_h > MAX_RATE_NL_PER_H:
            return (R_LIMIT, "at the bridged old concentration the bolus would be %d nL at %d nL/h" % (vol, rate))
        self._start(kind, vol, rate)
        return None

    def _start_dose(self, kind, b):
        if self.bridge_left_nl > 0:
            if not self._b_conc:
                return (R_BRIDGE, "the catheter holds another drug for %d nL more" % self.bridge_left_nl)
            return self._bridge_bolus(kind, b)
        self._start(kind, b.volume_nl, b.rate_nl_per_h)
        return None

    def request_patient_bolus(self, now_s):
        """Patient button / PTM. now_s: monotonic seconds. None when started, else (code, message)."""
        pb = self.patient
        if pb is None:
            return (R_NOT_PROGRAMMED, "no patient bolus in the prescription")
        r = self._can_start()
        if r is not None:
            return r
        if self._pt_count:
            last = self._pt_times[(self._pt_i - 1) % pb.max_per_day]
            wait = pb.lockout_s - (now_s - last)
            if wait > 0:
                return (R_LOCKOUT, "lockout: %d s left" % wait)
        n = 0
        for i in range(self._pt_count):
            if now_s - self._pt_times[i] < _DAY_S:
                n += 1
        if n >= pb.max_per_day:
            oldest = self._pt_times[self._pt_i]  # ring full: the slot to overwrite is the oldest
            return (R_MAX_PER_DAY, "%d in 24 h already; next in %d s" % (n, _DAY_S - (now_s - oldest)))
        r = self._start_dose(PATIENT, pb)
        if r is None:
            self._pt_times[self._pt_i] = now_s
            self._pt_i = (self._pt_i + 1) % pb.max_per_day
            if self._pt_count < pb.max_per_day:
                self._pt_count += 1
        return r

    def clinician_bolus(self, dose_ng, duration_min):
        """One-off dose. Bad values raise LimitError; a busy pump returns (code, message); None started."""
        lim = drugs.limits(self.drug)
        b = _Bolus({"dose_ng": dose_ng, "duration_min": duration_min}, "", self.conc_ug_per_ml, lim[3],
                   self.basal_max_nl_per_h, _MIN_PER_DAY)
        return self._can_start() or self._start_dose(CLINICIAN, b)

    def prime(self, duration_min, volume_nl=None):
        """Priming bolus after implant or a catheter change: pushes the catheter volume (default the
        prescription's) instead of the basal, so drug reaches the tip before the basal starts counting."""
        if volume_nl is None:
            volume_nl = self.catheter_volume_nl
        d = {"volume_nl": volume_nl, "duration_min": duration_min}
        vol = _int(d, "volume_nl", 1, MAX_BOLUS_NL)
        dur = _int(d, "duration_min", 1, _MIN_PER_DAY)
        rate = _check_rate(vol, dur, 0, "duration_min")
        r = self._can_start()
        if r is None and self.bridge_left_nl > 0:
            r = (R_BRIDGE, "a bridge is running (%d nL left): cancel it first" % self.bridge_left_nl)
        if r is None:
            self._start(PRIMING, vol, rate)
        return r

    def cancel_bolus(self):
        """Stops the running bolus; returns (kind, nL not programmed) for the log."""
        r = (self.bolus_kind, self.bolus_left_nl)
        self.bolus_kind = None
        self.bolus_left_nl = 0
        return r

    def suspend(self, on):
        """Suspend: basal 0, the running bolus is cancelled (never resumed later), boluses refused."""
        self.suspended = bool(on)
        if on:
            self.periodic_pending = False
            return self.cancel_bolus()
        return (None, 0)

    def start_bridge(self, old, pump_dead_volume_nl):
        """After a refill with another concentration: the pump tube and catheter (dead volume) still hold
        the old fluid. Until that volume has flowed, the basal runs at the rate that gives the prescribed
        dose through the OLD concentration; then the new concentration takes over. `old` is the Therapy
        being replaced. Same drug: the new doses through the old concentration. Another drug: the old
        prescription's own rates, and boluses wait for the bridge to end."""
        d = {"pump_dead_volume_nl": pump_dead_volume_nl}
        dead = _int(d, "pump_dead_volume_nl", 0, MAX_CATHETER_NL) + self.catheter_volume_nl
        if old.drug == self.drug:
            if old.conc_ug_per_ml == self.conc_ug_per_ml:
                return 0  # same fluid: nothing to bridge
            conc = old.conc_ug_per_ml
            starts = self.starts_ms
            rates = [rate_nl_per_h(d, conc) for d in self.doses]
            for dose in self.doses:
                if dose * 1000 > MAX_BASAL_NL_PER_DAY * conc:  # exact, as the prescription's own check
                    raise LimitError("bridge.nl_per_day", _ceil_div(dose * 1000, conc), MAX_BASAL_NL_PER_DAY,
                                     "the new dose through the old %d ug/mL is over the basal maximum"
                                     % conc)
        else:
            conc = 0
            starts, rates = old.starts_ms, old.rates
            if min(rates) == 0:
                raise LimitError("bridge.rate_nl_per_h", 0, MIN_BASAL_NL_PER_H,
                                 "the old prescription has no basal to push the old drug out: aspirate "
                                 "the catheter and prime instead; minimum")
        self._b_starts, self._b_rates, self._b_conc = starts, rates, conc
        self.bridge_left_nl = dead
        return dead

    def adopt(self, old):
        """Reprogramming keeps what must survive it: the patient bolus history (lockout and 24 h count
        are not reset by a new prescription), the periodic slot, suspension. A running bolus is not
        carried over (the caller cancels and logs it)."""
        self.suspended = old.suspended
        self._p_slot = old._p_slot if self._period_ms == old._period_ms else -1
        if self.patient is not None and old.patient is not None and old._pt_count:
            self._set_patient_times(old._patient_times())

    def _patient_times(self):
        """The accepted patient bolus times (monotonic s), newest first."""
        m = len(self._pt_times)  # the ring: max_per_day
        return [self._pt_times[(self._pt_i - 1 - k) % m] for k in range(self._pt_count)]

    def _set_patient_times(self, times):
        """A fresh ring from times newest first (the newest max_per_day of them)."""
        m = len(self._pt_times)
        times = times[:m]
        for k in range(len(times) - 1, -1, -1):  # oldest first into the ring
            self._pt_times[self._pt_i] = times[k]
            self._pt_i = (self._pt_i + 1) % m
        self._pt_count = len(times)

    # -- the state document (app checkpoint) -----------------------------------------------------
    def to_dict(self, now_s):
        """Runtime state that must survive a reset (the prescription itself is saved apart): suspension,
        the periodic slot, the patient bolus history (as ages: uptime restarts at boot), a running
        bridge. now_s: monotonic seconds. The keys are the checkpoint's on flash: keep them."""
        d = {"suspended": self.suspended, "p_slot": self._p_slot,
             "periodic_skipped": self.periodic_skipped}  # type: dict
        if self._pt_count:
            d["pt_ages_s"] = [now_s - t for t in self._patient_times()]
        if self.bridge_left_nl > 0:
            d["bridge"] = [self.bridge_left_nl, list(self._b_starts), list(self._b_rates), self._b_conc]
        return d

    @staticmethod
    def from_dict(rx, d, now_s):
        """The therapy of prescription rx (validated: LimitError) in the state to_dict saved. The downtime
        is unknown: taken as none, so a lockout lasts longer (never shorter) and the 24 h count keeps
        every bolus at least as long as it should. A running bolus is never restored."""
        th = Therapy(rx)
        th.suspended = bool(d.get("suspended", False))
        th._p_slot = d.get("p_slot", -1)
        th.periodic_skipped = d.get("periodic_skipped", 0)
        ages = d.get("pt_ages_s")
        if ages and th.patient is not None:
            th._set_patient_times([now_s - a for a in ages])
        br = d.get("bridge")
        if br:
            th.bridge_left_nl, th._b_starts, th._b_rates, th._b_conc = br[0], br[1], br[2], br[3]
        return th

    def cancel_bridge(self):
        left = self.bridge_left_nl
        self.bridge_left_nl = 0
        return left


def _copy(v):
    """Deep copy of a JSON-able value (no copy module on MicroPython)."""
    if type(v) is dict:
        return {k: _copy(x) for k, x in v.items()}
    if type(v) is list:
        return [_copy(x) for x in v]
    return v


def validate(rx):
    """Validate a prescription dict: returns its normalised copy, or raises LimitError."""
    return Therapy(rx).prescription()
