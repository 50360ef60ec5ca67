# The runtime therapy over a validated prescription (prescription.py): the basal and bolus rates now,
# boluses (periodic, patient, clinician, priming) with their lockouts, suspension and the concentration
# bridge, and the state a checkpoint keeps (to_dict / from_dict). Per-tick calls allocate nothing.
# How dosing drives it each tick: docs/dosing.md.
from micropython import const

from itpump import LimitError, drugs, prescription
from itpump.prescription import DAY_MS, Prescription

_MIN_PER_DAY = const(1440)
_DAY_S = const(86400)

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


class Therapy(Prescription):
    """A validated prescription (Prescription) and the delivery state it drives (boluses, bridge,
    lockouts)."""

    def __init__(self, rx):
        super().__init__(rx)  # LimitError names a bad field
        self.suspended = False
        self.bolus_kind = None  # one of the kinds above while a bolus runs
        self.bolus_rate = 0  # nL/h
        self.bolus_left_nl = 0
        self.bolus_volume_nl = 0
        self.bridge_left_nl = 0
        self._b_starts = self.starts_ms
        self._b_rates = self.rates
        self._b_conc = 0  # old concentration while bridging the same drug, 0 otherwise
        self.seg_end_ms = DAY_MS  # set by basal_nl_per_h(): end of the schedule segment it answered for
        self._p_slot = -1
        self.periodic_pending = False
        self.periodic_skipped = 0
        n = self.patient.max_per_day if self.patient else 0
        self._pt_times = [0] * n  # ring of accepted patient bolus times (monotonic s)
        self._pt_count = 0
        self._pt_i = 0

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
            per = self.period_ms
            k = (tod_ms - self.periodic_start_ms) % DAY_MS // per + 1
            at = (self.periodic_start_ms + k * per) % DAY_MS
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
            slot = ((tod_ms - self.periodic_start_ms) % DAY_MS) // self.period_ms
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
        vol = prescription.volume_nl(b.dose_ng, old)
        if vol > self.bridge_left_nl:
            rest_ng = b.dose_ng - self.bridge_left_nl * old // 1000
            vol = self.bridge_left_nl + prescription.volume_nl(rest_ng, self.conc_ug_per_ml)
        rate = prescription.bolus_rate_nl_per_h(vol, b.duration_min)
        if vol > drugs.MAX_BOLUS_NL or rate + self.basal_max_nl_per_h > drugs.MAX_RATE_NL_PER_H:
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
        b = prescription.Bolus({"dose_ng": dose_ng, "duration_min": duration_min}, "", self.conc_ug_per_ml,
                               lim[3], self.basal_max_nl_per_h, _MIN_PER_DAY)
        return self._can_start() or self._start_dose(CLINICIAN, b)

    def prime(self, duration_min, volume_nl=None):
        """Priming bolus after implant or a catheter change: pushes the catheter volume (default the
        prescription's) instead of the basal, so drug reaches the tip before the basal starts counting."""
        if volume_nl is None:
            volume_nl = self.catheter_volume_nl
        d = {"volume_nl": volume_nl, "duration_min": duration_min}
        vol = prescription.field_int(d, "volume_nl", 1, drugs.MAX_BOLUS_NL)
        dur = prescription.field_int(d, "duration_min", 1, _MIN_PER_DAY)
        rate = prescription.check_bolus_rate(vol, dur, 0, "duration_min")
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
        dead = prescription.field_int(d, "pump_dead_volume_nl", 0, drugs.MAX_CATHETER_NL) + self.catheter_volume_nl
        if old.drug == self.drug:
            if old.conc_ug_per_ml == self.conc_ug_per_ml:
                return 0  # same fluid: nothing to bridge
            conc = old.conc_ug_per_ml
            starts = self.starts_ms
            rates = [prescription.rate_nl_per_h(d, conc) for d in self.doses]
            for dose in self.doses:
                if dose * 1000 > drugs.MAX_BASAL_NL_PER_DAY * conc:  # exact, as the prescription's own check
                    raise LimitError("bridge.nl_per_day", prescription.ceil_div(dose * 1000, conc),
                                     drugs.MAX_BASAL_NL_PER_DAY, "the new dose through the old %d ug/mL is over the "
                                     "basal maximum" % conc)
        else:
            conc = 0
            starts, rates = old.starts_ms, old.rates
            if min(rates) == 0:
                raise LimitError("bridge.rate_nl_per_h", 0, drugs.MIN_BASAL_NL_PER_H,
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
        self._p_slot = old._p_slot if self.period_ms == old.period_ms else -1
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
