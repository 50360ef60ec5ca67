# Prescriptions: the plain JSON-able dict (all ints, doses in ng) validated against the drug library and
# the device's limits, and the figures derived from it. The device and the host (pumpctl.prescription)
# validate with this same file; a refusal is a LimitError naming the field, value and limit.
# The format and its limits: docs/dosing.md (Prescriptions).
from micropython import const

from itpump import LimitError, check_int, drugs

DAY_MS = const(86400000)  # a day of time-of-day ms (< 2**30)
_MIN_PER_DAY = const(1440)
_MAX_FLEX_STEPS = const(10)
_MAX_PATIENT_PER_DAY = const(24)
PERIODS_H = (1, 2, 3, 4, 6, 8, 12, 24)  # divide the day: every bolus falls at the same time each day

MODES = ("continuous", "flex", "periodic")

FIELDS = ("drug", "conc_ug_per_ml", "catheter_volume_nl", "mode", "dose_ng_per_day", "flex", "periodic",
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


def field_int(d, key, lo, hi, path="", what=""):
    """d[key] through check_int, named by its dotted path; a missing key is refused by name too."""
    if key not in d:
        raise LimitError(path + key, None, "an integer", "missing, must be")
    return check_int(path + key, d[key], lo, hi, what)


def ceil_div(a, b):
    return -(-a // b)


class Bolus:
    """A programmed bolus (periodic or patient): volume and rate precomputed at programming time."""

    def __init__(self, d, path, conc, dose_max, basal_max_rate, max_duration_min):
        self.lockout_s = 0  # patient boluses only
        self.max_per_day = 0
        self.dose_ng = field_int(d, "dose_ng", 1, dose_max, path, " daily dose of the drug")
        self.duration_min = field_int(d, "duration_min", 1, max_duration_min, path)
        dose = self.dose_ng
        v = self.volume_nl = volume_nl(dose, conc)
        if v < 1:
            raise LimitError(path + "dose_ng", dose, (conc + 1999) // 2000, "under 1 nL at this concentration; minimum")
        if dose * 1000 > drugs.MAX_BOLUS_NL * conc:  # the exact volume: the rounded one may sit at the limit
            raise LimitError(path + "dose_ng", dose, drugs.MAX_BOLUS_NL * conc // 1000,
                             "over the %d nL bolus volume limit; maximum" % drugs.MAX_BOLUS_NL)
        self.rate_nl_per_h = check_bolus_rate(v, self.duration_min, basal_max_rate, path + "duration_min")


def check_bolus_rate(vol, duration_min, basal_max_rate, field):
    r = bolus_rate_nl_per_h(vol, duration_min)
    if r + basal_max_rate > drugs.MAX_RATE_NL_PER_H:
        room = drugs.MAX_RATE_NL_PER_H - basal_max_rate
        raise LimitError(field, duration_min, (vol * 60 + room - 1) // room,
                         "too short: %d nL/h plus basal is over the device maximum %d nL/h; minimum"
                         % (r, drugs.MAX_RATE_NL_PER_H))
    return r


class Prescription:
    """A validated prescription and the figures derived from it (rates, bolus volumes, daily totals)."""

    def __init__(self, rx):
        _dict(rx, "prescription")
        _keys(rx, FIELDS, "")
        drug = rx.get("drug")
        if drug not in drugs.DRUGS:
            raise LimitError("drug", drug, drugs.names(), "unknown; one of")
        lim = drugs.limits(drug)
        self.drug = drug
        conc = self.conc_ug_per_ml = field_int(rx, "conc_ug_per_ml", lim[0], lim[1], "", " for " + drug)
        self.catheter_volume_nl = field_int(rx, "catheter_volume_nl", 1, drugs.MAX_CATHETER_NL)
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
                starts.append(field_int(s, "start_min", lo, hi, path) * 60000)
                doses.append(field_int(s, "dose_ng_per_day", 1, lim[3], path, " for " + drug))
                fields.append(path + "dose_ng_per_day")
        else:
            zero_ok = 0 if mode == "periodic" else 1
            starts, doses = [0], [field_int(rx, "dose_ng_per_day", zero_ok, lim[3], "", " for " + drug)]
            fields = ["dose_ng_per_day"]
        rates = []
        for i in range(len(doses)):
            # each basal dose against the device's basal volume range, on the exact daily volume (dose *
            # 1000 / conc nL; never a rounded rate); the limit is named as a dose
            dose = doses[i]
            r = rate_nl_per_h(dose, conc)
            if dose and dose * 1000 < drugs.MIN_BASAL_NL_PER_DAY * conc:
                raise LimitError(fields[i], dose, ceil_div(drugs.MIN_BASAL_NL_PER_DAY * conc, 1000),
                                 "gives %d nL/day (%d nL/h), under the device minimum %d nL/day; minimum"
                                 % (dose * 1000 // conc, r, drugs.MIN_BASAL_NL_PER_DAY))
            if dose * 1000 > drugs.MAX_BASAL_NL_PER_DAY * conc:
                raise LimitError(fields[i], dose, drugs.MAX_BASAL_NL_PER_DAY * conc // 1000,
                                 "gives %d nL/day (%d nL/h), over the basal maximum %d nL/day; maximum"
                                 % (ceil_div(dose * 1000, conc), r, drugs.MAX_BASAL_NL_PER_DAY))
            rates.append(r)
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
        self.period_ms = 0
        self.periodic_start_ms = 0
        if mode == "periodic":
            p = _dict(rx.get("periodic"), "periodic")
            _keys(p, _PERIODIC, "periodic.")
            every = field_int(p, "every_h", 1, 24, "periodic.")
            if every not in PERIODS_H:
                raise LimitError("periodic.every_h", every, PERIODS_H, "must divide the day; one of")
            start = field_int(p, "start_min", 0, _MIN_PER_DAY - 1, "periodic.")
            pb = self.periodic = Bolus(p, "periodic.", conc, lim[3], basal_max, every * 60 - 1)
            self.period_ms = every * 3600000
            self.periodic_start_ms = start * 60000
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
            pb = self.patient = Bolus(p, "patient_bolus.", conc, lim[3], basal_max, _MIN_PER_DAY)
            pb.lockout_s = 60 * field_int(p, "lockout_min", pb.duration_min, _MIN_PER_DAY, "patient_bolus.",
                                     " (no shorter than the bolus itself)")
            pb.max_per_day = field_int(p, "max_per_day", 1, _MAX_PATIENT_PER_DAY, "patient_bolus.")
            day_dose += pb.max_per_day * pb.dose_ng
            day_vol += pb.max_per_day * pb.volume_nl
            bolus_ng += pb.max_per_day * pb.dose_ng
        if day_dose > lim[3]:
            raise LimitError("total_ng_per_day", day_dose, lim[3],
                             "basal + boluses over the maximum daily dose of " + drug)
        # exact daily volume = (dose_min_x1440 / 1440 + bolus_ng) * 1000 / conc nL, compared in integers
        exact_x = (dose_min_x1440 + bolus_ng * _MIN_PER_DAY) * 1000  # nL * conc * 1440
        if exact_x > drugs.MAX_DAILY_NL * conc * _MIN_PER_DAY:
            raise LimitError("total_nl_per_day", ceil_div(exact_x, conc * _MIN_PER_DAY), drugs.MAX_DAILY_NL,
                             "basal + boluses over the device daily volume maximum")
        self.day_dose_ng = day_dose
        self.day_volume_nl = day_vol
        self.basal_max_nl_per_h = basal_max
        self._rx = _copy(rx)

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


def _copy(v):
    """Deep copy of a JSON-able value (no copy module on MicroPython)."""
    if type(v) is dict:
        return {k: _copy(x) for k, x in v.items()}
    if type(v) is list:
        return [_copy(x) for x in v]
    return v


def validate(rx):
    """Validate a prescription dict: returns its normalised copy, or raises LimitError."""
    return Prescription(rx).prescription()
