# Line safety: each tick after delivery, the pressure and the steps asked and confirmed feed the occlusion
# detector (occlusion.py); an occlusion, a leak, a stall or a missing sensor stops the pump (the halt
# table, halts.py) and is logged. The checks and their reasoning: docs/occlusion.md.
from micropython import const

from itpump import alarms, halts, occlusion

# Line model calibration when the board's dict lacks it (keys compliance_nl_per_kpa,
# resistance_pa_s_per_ul, noise_pa): the bench line of boards/sim/rom/plant.py (same tubing and catheter
# as docs/hardware.md): C = 0.607 uL/kPa, R = 0.465 kPa s/uL. Noise: one reading of the rp2 boards'
# 0-200 kPa transducer (60 Pa per LSB through the 3/2 divider) at 0.68 LSB rms after 16x oversampling
# (plant.py's doubled ADC noise) = 41 Pa; the sim's reading is 21 Pa. The larger one: a detector that
# starts with too much noise is slower for its first minutes, one with too little false-alarms.
_DEFAULT_COMPLIANCE_NL_PER_KPA = const(607)
_DEFAULT_RESISTANCE_PA_S_PER_UL = const(465)
_DEFAULT_NOISE_PA = const(41)
_SENSOR_TICKS = const(3)  # missing readings in a row before the sensor fault stops the pump (ADC glitch)
_MOVE_LATE_MS = const(1000)  # a move (<= 90 ms) still running after this: its steps count as unconfirmed
_GAP_MIN_MS = const(50)  # ticks outside _GAP_MIN_MS.._GAP_MAX_MS do not feed the detector's statistics
_GAP_MAX_MS = const(200)
# The line's SAFETY record kinds (positions in eventlog.SAFETY_KINDS; the others: halts.S_*)
_S_OCCLUSION = const(0)
_S_LEAK = const(1)
S_STALL = const(2)  # also the rotor index's silent stall (pump.py)
_S_SENSOR = const(3)
_S_CLEARED = const(4)
S_RESET = const(10)


class Line:
    def __init__(self, pump, pressure, cal, pl_per_step, tick_ms):
        """The line of `pump` watched through `pressure` (None: no detector). ValueError names a bad
        calibration value."""
        self.pump = pump
        self.pressure = pressure
        cal = cal or {}
        # (compliance_nl_per_kpa, resistance_pa_s_per_ul, noise_pa, tick_ms), the bench line's by default
        self._cal = (cal.get("compliance_nl_per_kpa", _DEFAULT_COMPLIANCE_NL_PER_KPA),
                     cal.get("resistance_pa_s_per_ul", _DEFAULT_RESISTANCE_PA_S_PER_UL),
                     cal.get("noise_pa", _DEFAULT_NOISE_PA), tick_ms)
        self.occ = None  # occlusion.Detector; the pump's tick calls sense() while there is one
        self.state = occlusion.OK
        self.pressure_pa = 0  # last good reading
        # counted by the pump: steps handed to the motor since the detector's last update, steps booked
        # as confirmed since then, and the move in flight (steps, start)
        self.asked = 0
        self.confirmed = 0
        self.move_n = 0
        self.move_t = 0
        self._sensor_n = 0  # missing readings in a row
        self._priming = False
        self.gap_ticks = 0  # ticks that skipped the detector's statistics
        self.sensor_misses = 0
        if pressure is not None:
            self.occ = self._detector(pl_per_step)

    def sense(self, now, el):
        """Pressure + step counts -> the detector (self.occ); acts on what it finds (allocates only on
        a finding). In steps with few locals each: a frame over 11 words comes from the heap on the
        chip (docs/epico.md)."""
        th = self.pump.therapy
        if th is not None:
            if th.bolus_kind == "priming":
                self._priming = True
            elif self._priming:  # the line is full now: learn its baseline afresh
                self._priming = False
                self.reset()
        pa = self._read()
        st = self._feed(now, el, pa)
        if pa is None:
            self.sensor_misses += 1
        else:
            self.pressure_pa = pa
        self._act(st)

    def _read(self):
        try:
            return self.pressure.read_pa()
        except Exception:  # ValueError: outside the sensor's band; anything else: the driver failed
            return None

    def _feed(self, now, el, pa):
        """The reading and the steps asked (less a move still running) and confirmed since the last
        one into the detector; returns its state. Ticks outside the expected gap skip its statistics."""
        held = 0
        if self.move_n:
            if self.pump.motor.busy():
                if self.pump.clock.ticks_diff(now, self.move_t) < _MOVE_LATE_MS:
                    held = self.move_n  # still running: not due for confirmation yet
            else:
                self.move_n = 0
        self.asked -= held
        assert self.occ is not None  # sense() runs only with a detector (Pump.tick)
        if _GAP_MIN_MS <= el <= _GAP_MAX_MS:
            st = self.occ.update(pa, self.asked, self.confirmed)
        else:
            self.gap_ticks += 1
            st = self._feed_gap(el, pa)
        self.asked = held
        self.confirmed = 0
        return st

    def _feed_gap(self, el, pa):
        assert self.occ is not None
        return self.occ.update_gap(pa, self.asked, self.confirmed, False, el)

    def _act(self, st):
        """The detector's state st: the sensor fault after _SENSOR_TICKS missing readings, and what a
        change of state means for the pump."""
        prev = self.state
        self.state = st
        if st == occlusion.SENSOR:
            n = self._sensor_n + 1
            self._sensor_n = n
            if n == _SENSOR_TICKS:
                self.pump.safety_stop(alarms.SENSOR_FAULT, _S_SENSOR, 0)
            return
        if self._sensor_n:
            self._sensor_n = 0
            self.pump.condition_gone(alarms.SENSOR_FAULT)
        if st != prev:
            self._changed(st, prev)

    def _changed(self, st, prev):
        det = self.occ
        assert det is not None
        p = self.pump
        if st == occlusion.OCCLUSION:
            if p.relearn and p.halt:
                return  # halted on a STALL / LEAK / SENSOR: the model is void, relearnt on resuming
            p.safety_stop(alarms.OCCLUSION, _S_OCCLUSION, det.missed_nl())
        elif st == occlusion.LEAK:
            p.safety_stop(alarms.LEAK, _S_LEAK, 0)
        elif st == occlusion.STALL:
            p.safety_stop(alarms.STALL, S_STALL, det.pending * p.dosing.pl_per_step // 1000)
        elif st == occlusion.CLEARED:
            p.log_safety(_S_CLEARED, self.pressure_pa, det.released_nl)
            p.condition_gone(alarms.OCCLUSION)
        elif prev == occlusion.LEAK:
            p.condition_gone(alarms.LEAK)

    def motor_stopped(self):
        """The motor was stopped, or its stall acknowledged: what was asked and never emitted is dropped,
        not a stall to the detector."""
        self.asked = self.confirmed
        self.move_n = 0
        if self.occ is not None:
            self.occ.clear_motor()

    def sensor_fault(self):
        """The pressure sensor has been missing long enough to stop the pump."""
        return self._sensor_n >= _SENSOR_TICKS

    def reset(self):
        """Forget the line's baseline and any occlusion / leak (after priming, a refill, a new program)."""
        if self.occ is None:
            return
        was = self.occ.state
        self.occ.reset()
        self.state = occlusion.OK
        p = self.pump
        if was == occlusion.OCCLUSION or was == occlusion.LEAK:
            p.log_safety(S_RESET, self.pressure_pa, 0)
        for code in (alarms.OCCLUSION, alarms.LEAK):
            if p.alarms.is_present(code):
                p.alarms.clear_condition(code)
        halts.release_inactive(p)

    def set_pl_per_step(self, pl):
        """A step's pressure changed: a new model, learnt afresh."""
        if self.occ is not None:
            self.occ = self._detector(pl)
            self.state = occlusion.OK
            halts.release_inactive(self.pump)

    def _detector(self, pl_per_step):
        c, r, noise, tick_ms = self._cal
        return occlusion.Detector(pl_per_step, c, r, noise, tick_ms=tick_ms)

    def status(self):
        """Line safety for the status op (allocates)."""
        d = {}  # type: dict
        d["pressure_pa"] = self.pressure_pa
        d["gap_ticks"] = self.gap_ticks
        d["sensor_misses"] = self.sensor_misses
        det = self.occ
        if det is None:
            d["occlusion"] = None
        else:
            d["occlusion"] = {"state": occlusion.NAMES[self.state], "armed": det.armed(),
                              "stored_nl": det.stored_nl, "released_nl": det.released_nl,
                              "pending_steps": det.pending}
        return d
