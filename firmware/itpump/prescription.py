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

_MODES = const(("continuous", "flex", "periodic"))

FIELDS = ("drug", "conc_ug_per_ml", "catheter_volume_nl", "mode", "dose_ng_per_day", "flex", "periodic",
        "patient_bolus")
_FLEX = const(("start_min", "dose_ng_per_day"))
_PERIODIC = const(("dose_ng", "every_h", "start_min", "duration_min"))
_PATIENT = const(("dose_ng", "duration_min", "lockout_min", "max_per_day"))


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
def _table(v, allowed, path):
    """v if it is a dict of allowed keys only; refused as the table (path less its dot, the whole
    prescription at the top) or as its unknown field."""
    if type(v) is not dict:
        raise LimitError(path[:-1] or "prescription", v, "a table", "must be")
    for k in v:
        if k not in allowed:
            raise LimitError(path + k, v[k], allowed, "unknown field; allowed")
    return v


def field_int(d, key, lo, hi, *where):
    """d[key] through check_int, named by its dotted path where[0] (none given: the top) and where[1],
    if given, saying whose bound; a missing key is refused by name too. Varargs, not defaults (check_int)."""
    name = where[0] + key if where else key
    if key not in d:
        raise LimitError(name, None, "an integer", "missing, must be")
    return check_int(name, d[key], lo, hi, *where[1:])


def ceil_div(a, b):
    return -(-a // b)


def _mode(rx):
    """The mode, and the fields only one mode takes (flex, periodic) or one refuses (flex)."""
    mode = rx.get("mode")
    if mode not in _MODES:
        raise LimitError("mode", mode, _MODES, "unknown; one of")
    for k in ("flex", "periodic"):
        if k in rx and mode != k:
            raise LimitError(k, rx[k], k, "only allowed with mode")
    if "dose_ng_per_day" in rx and mode == "flex":
        raise LimitError("dose_ng_per_day", rx["dose_ng_per_day"], "flex", "not allowed with mode")
    return mode


def _flex(steps, dose_max, whose):
    """The flex table: its steps' starts (ms of day, the first at midnight, rising), doses and fields."""
    if type(steps) is not list or not 1 <= len(steps) <= _MAX_FLEX_STEPS:
        raise LimitError("flex", steps, _MAX_FLEX_STEPS, "must be a list of 1 to")
    starts = []  # type: list[int]
    doses = []  # type: list[int]
    fields = []  # type: list[str]
    for i, s in enumerate(steps):
        path = "flex[%d]." % i
        _table(s, _FLEX, path)
        lo = 0 if i == 0 else starts[-1] // 60000 + 1
        hi = 0 if i == 0 else _MIN_PER_DAY - 1
        starts.append(field_int(s, "start_min", lo, hi, path) * 60000)
        doses.append(field_int(s, "dose_ng_per_day", 1, dose_max, path, whose))
        fields.append(path + "dose_ng_per_day")
    return starts, doses, fields


def _basal_rate(field, dose, conc):
    """A basal dose's rate, the dose checked against the device's basal volume range on the exact daily
    volume (dose * 1000 / conc nL, never the rounded rate) and the limit named as a dose."""
    r = rate_nl_per_h(dose, conc)
    if dose and dose * 1000 < drugs.MIN_BASAL_NL_PER_DAY * conc:
        raise LimitError(field, dose, ceil_div(drugs.MIN_BASAL_NL_PER_DAY * conc, 1000),
                         "gives %d nL/day (%d nL/h), under the device minimum %d nL/day; minimum"
                         % (dose * 1000 // conc, r, drugs.MIN_BASAL_NL_PER_DAY))
    if dose * 1000 > drugs.MAX_BASAL_NL_PER_DAY * conc:
        raise LimitError(field, dose, drugs.MAX_BASAL_NL_PER_DAY * conc // 1000,
                         "gives %d nL/day (%d nL/h), over the basal maximum %d nL/day; maximum"
                         % (ceil_div(dose * 1000, conc), r, drugs.MAX_BASAL_NL_PER_DAY))
    return r


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
    """A validated prescription and the figures derived from it (rates, bolus volumes, daily totals).
    A check that fails refuses it whole with a LimitError naming the field; the first to fail, in the
    order __init__ runs them, is the one reported."""

    def __init__(self, rx):
        lim = self._drug(_table(rx, FIELDS, ""))
        self.mode = _mode(rx)
        basal_x1440 = self._basal(rx, lim[3])
        self.periodic = self._periodic(rx, lim[3])
        if self.day_dose_ng < lim[2]:  # on the scheduled doses, before the patient bolus is read
            raise LimitError("total_ng_per_day", self.day_dose_ng, lim[2],
                             "below the minimum daily dose of " + self.drug)
        self.patient = self._patient(rx, lim[3])
        self._day_limits(lim[3], basal_x1440)
        self._rx = _copy(rx)

    # -- the checks, in order ---------------------------------------------------------------------
    def _drug(self, rx):
        """The drug, its concentration in the drug's range, the catheter volume. Returns the drug's
        limits (drugs.limits)."""
        drug = rx.get("drug")
        if drug not in drugs.DRUGS:
            raise LimitError("drug", drug, drugs.names(), "unknown; one of")
        lim = drugs.limits(drug)
        self.drug = drug
        self.conc_ug_per_ml = field_int(rx, "conc_ug_per_ml", lim[0], lim[1], "", " for " + drug)
        self.catheter_volume_nl = field_int(rx, "catheter_volume_nl", 1, drugs.MAX_CATHETER_NL)
        return lim

    def _basal(self, rx, dose_max):
        """The basal schedule: step starts (ms of day), doses and rates; one step from midnight unless
        flex. Counts it into the day and returns its exact daily dose x 1440 (ng/day * min)."""
        if self.mode == "flex":
            starts, doses, fields = _flex(rx.get("flex"), dose_max, " for " + self.drug)
        else:
            zero_ok = 0 if self.mode == "periodic" else 1
            starts, doses = [0], [field_int(rx, "dose_ng_per_day", zero_ok, dose_max, "", " for " + self.drug)]
            fields = ["dose_ng_per_day"]
        rates = [_basal_rate(fields[i], doses[i], self.conc_ug_per_ml) for i in range(len(doses))]
        self.starts_ms = starts
        self.doses = doses
        self.rates = rates
        self.basal_max_nl_per_h = max(rates)
        dose_x1440 = vol_x60 = 0  # each step over its minutes of the day
        for i in range(len(starts)):
            mins = ((starts[i + 1] if i + 1 < len(starts) else DAY_MS) - starts[i]) // 60000
            dose_x1440 += doses[i] * mins
            vol_x60 += rates[i] * mins
        self.day_dose_ng = dose_x1440 // _MIN_PER_DAY
        self.day_volume_nl = vol_x60 // 60  # what the pump delivers, at the rounded rates
        return dose_x1440

    def _periodic(self, rx, dose_max):
        """The periodic bolus (mode periodic): every_h dividing the day, from start_min. Counted into
        the day."""
        self.period_ms = 0
        self.periodic_start_ms = 0
        if self.mode != "periodic":
            return None
        p = _table(rx.get("periodic"), _PERIODIC, "periodic.")
        every = field_int(p, "every_h", 1, 24, "periodic.")
        if every not in PERIODS_H:
            raise LimitError("periodic.every_h", every, PERIODS_H, "must divide the day; one of")
        start = field_int(p, "start_min", 0, _MIN_PER_DAY - 1, "periodic.")
        b = Bolus(p, "periodic.", self.conc_ug_per_ml, dose_max, self.basal_max_nl_per_h, every * 60 - 1)
        self.period_ms = every * 3600000
        self.periodic_start_ms = start * 60000
        self.day_dose_ng += 24 // every * b.dose_ng
        self.day_volume_nl += 24 // every * b.volume_nl
        return b

    def _patient(self, rx, dose_max):
        """The patient bolus (optional, any mode): its lockout no shorter than itself. Counted into the
        day at its daily maximum."""
        if "patient_bolus" not in rx:
            return None
        p = _table(rx["patient_bolus"], _PATIENT, "patient_bolus.")
        b = Bolus(p, "patient_bolus.", self.conc_ug_per_ml, dose_max, self.basal_max_nl_per_h, _MIN_PER_DAY)
        b.lockout_s = 60 * field_int(p, "lockout_min", b.duration_min, _MIN_PER_DAY, "patient_bolus.",
                                     " (no shorter than the bolus itself)")
        b.max_per_day = field_int(p, "max_per_day", 1, _MAX_PATIENT_PER_DAY, "patient_bolus.")
        self.day_dose_ng += b.max_per_day * b.dose_ng
        self.day_volume_nl += b.max_per_day * b.volume_nl
        return b

    def _day_limits(self, dose_max, basal_x1440):
        """The day's dose, basal and boluses at their maximum, against the drug's maximum, and its exact
        volume against the device's."""
        day = self.day_dose_ng
        if day > dose_max:
            raise LimitError("total_ng_per_day", day, dose_max,
                             "basal + boluses over the maximum daily dose of " + self.drug)
        # exact daily volume = (basal_x1440 / 1440 + boluses ng) * 1000 / conc nL, compared in integers
        conc = self.conc_ug_per_ml
        exact_x = (basal_x1440 + (day - basal_x1440 // _MIN_PER_DAY) * _MIN_PER_DAY) * 1000  # nL*conc*1440
        if exact_x > drugs.MAX_DAILY_NL * conc * _MIN_PER_DAY:
            raise LimitError("total_nl_per_day", ceil_div(exact_x, conc * _MIN_PER_DAY), drugs.MAX_DAILY_NL,
                             "basal + boluses over the device daily volume maximum")

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
