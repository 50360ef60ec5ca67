# Reservoir: computed volume (from confirmed steps, rounded toward empty), low / empty, refill with
# reconciliation of the measured remainder, time to empty. Refill procedure and tolerance: docs/dosing.md.
from micropython import const

from itpump import LimitError, check_int, drugs

CAPACITIES_NL = (20000000, 40000000)  # 20 and 40 mL, the sizes implanted pumps come in
LOW_NL = const(2000000)  # low-reservoir alarm at 2 mL: weeks of warning at usual 0.1-1 mL/day
# Stop before the computed volume reaches 0: it is an estimate (1 % calibration error on 20 mL is 0.2 mL)
# and a reservoir cannot deliver its last drops without pulling air.
EMPTY_NL = const(500000)
_MISMATCH_DIVISOR = const(20)  # tolerance = capacity / 20


class Reservoir:
    def __init__(self, capacity_nl=20000000, low_nl=LOW_NL, empty_nl=EMPTY_NL):
        if capacity_nl not in CAPACITIES_NL:
            raise LimitError("capacity_nl", capacity_nl, CAPACITIES_NL, "not a pump size; one of")
        check_int("empty_nl", empty_nl, 0, capacity_nl // 4)
        check_int("low_nl", low_nl, empty_nl, capacity_nl // 2)
        self.capacity_nl = capacity_nl
        self.low_nl = low_nl
        self.empty_nl = empty_nl
        self.tolerance_nl = capacity_nl // _MISMATCH_DIVISOR
        self._vol_nl = 0
        self._used_pl = 0  # drawn, below a whole nL
        self.drug = None
        self.conc_ug_per_ml = 0
        self.mismatch_warning = False

    # -- per tick (no allocation) ----------------------------------------------------------------
    def draw_pl(self, pl):
        u = self._used_pl + pl
        nl = u // 1000
        self._vol_nl -= nl
        self._used_pl = u - nl * 1000

    def volume_nl(self):
        """Computed remaining volume, rounded down, never negative."""
        v = self._vol_nl - (1 if self._used_pl else 0)
        return v if v > 0 else 0

    def is_low(self):
        return self.volume_nl() <= self.low_nl

    def is_empty(self):
        """Stop delivery: the usable volume is gone."""
        return self.volume_nl() <= self.empty_nl

    # -- estimates ---------------------------------------------------------------------------------
    def hours_to_empty(self, nl_per_day):
        """Whole hours until is_empty() at nl_per_day (e.g. Therapy.day_volume_nl); -1 if no flow."""
        if nl_per_day <= 0:
            return -1
        usable = self.volume_nl() - self.empty_nl
        return usable * 24 // nl_per_day if usable > 0 else 0

    def days_to_empty(self, nl_per_day):
        h = self.hours_to_empty(nl_per_day)
        return h if h < 0 else h // 24

    # -- refill ------------------------------------------------------------------------------------
    def refill(self, drug, conc_ug_per_ml, added_nl, removed_nl):
        """Aspirated `removed_nl` (measured), then filled `added_nl` of drug at conc. Validates all first
        (bad input changes nothing). Returns a dict for the log; "bridge" is true when the catheter now
        holds another fluid than the reservoir (the caller starts Therapy.start_bridge)."""
        if drug not in drugs.DRUGS:
            raise LimitError("drug", drug, drugs.names(), "unknown; one of")
        lim = drugs.limits(drug)
        check_int("conc_ug_per_ml", conc_ug_per_ml, lim[0], lim[1])
        check_int("added_nl", added_nl, 1, self.capacity_nl)
        check_int("removed_nl", removed_nl, 0, self.capacity_nl)
        expected = self.volume_nl()
        mismatch = removed_nl - expected
        if mismatch < 0:
            mismatch = -mismatch
        warn = self.drug is not None and mismatch > self.tolerance_nl
        bridge = self.drug is not None and (drug != self.drug or conc_ug_per_ml != self.conc_ug_per_ml)
        self.mismatch_warning = warn
        self._vol_nl = added_nl
        self._used_pl = 0
        self.drug = drug
        self.conc_ug_per_ml = conc_ug_per_ml
        return {"expected_nl": expected, "removed_nl": removed_nl, "mismatch_nl": mismatch,
                "tolerance_nl": self.tolerance_nl, "warning": warn, "bridge": bridge, "volume_nl": added_nl}

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self):
        return {"capacity_nl": self.capacity_nl, "low_nl": self.low_nl, "empty_nl": self.empty_nl,
                "volume_nl": self._vol_nl, "used_pl": self._used_pl, "drug": self.drug,
                "conc_ug_per_ml": self.conc_ug_per_ml, "mismatch_warning": self.mismatch_warning}

    @staticmethod
    def from_dict(d):
        r = Reservoir(d["capacity_nl"], d["low_nl"], d["empty_nl"])
        r._vol_nl = check_int("volume_nl", d["volume_nl"], -r.capacity_nl, r.capacity_nl)
        r._used_pl = check_int("used_pl", d["used_pl"], 0, 999)
        r.drug = d["drug"]
        r.conc_ug_per_ml = d["conc_ug_per_ml"]
        r.mismatch_warning = bool(d["mismatch_warning"])
        return r
