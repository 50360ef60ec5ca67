# Delivery: one control tick moves drug from the therapy to the motor, accounts for it from confirmed
# steps only, never passes the reserve mark, and stops on any doubt: the halt table says why, and halts
# latch until released (halts.py). The pipeline: docs/dosing.md; line safety: line.py.
import struct

from micropython import const

from itpump import alarms, drugs, eventlog, halts, store
from itpump.dosing import Dosing
from itpump.guard import Guard, Limits
from itpump.line import S_STALL, Line
from itpump.prescription import DAY_MS
from itpump.reservoir import Reservoir
from itpump.rotor import EDGE as R_EDGE
from itpump.rotor import STALL as R_STALL
from itpump.rotor import Index
from itpump.rotor import magnets as rotor_magnets

TICK_MS = const(100)  # the app's control tick
_SPREAD_US = const(90000)  # a tick's steps are spread over 90 % of the tick: the move ends before the next
_PERIOD_MIN_US = const(10)  # board contract: min 10 us, rounded down to even
_PERIOD_MAX_US = const(1000000)
_MAX_MOVE_STEPS = const(1 << 20)
# Confirmed beyond what was asked, by more than this: the driver runs on its own (STEP_MISMATCH).
_MISMATCH_STEPS = const(2)
# A SAFETY record (eventlog.CODES): kind (halts.S_*, line.py), pressure_pa, volume_nl
_SAFETY_FMT = const("<BiI")


def hard_limits(pl_per_step, pass_excess_pl=0):
    """The guard's limits: the device's hard ceilings, whatever the prescription says (the guard must
    hold when therapy or dosing is wrong): rate 1 mL/h, 1 mL in any hour, the daily maximum plus one
    maximal bolus (a catheter prime) in any 24 h.
    Roller pulsation (dosing.pass_excess_pl): steps are consecutive rotor phases, so any run of n steps
    carries at most n * pl_per_step + pass_excess_pl; the window limits leave that room, so they hold in
    volume, not only in mean steps. The rate stays in mean steps: counted at the largest step it would
    throttle a prescription at the device's maximum rate by the profile's depth (a 1 mL/h prime would
    lose a sixth at +-20 %); within a pass the volume rate may exceed it by pass_excess_pl."""
    rate = drugs.MAX_RATE_NL_PER_H
    day = drugs.MAX_DAILY_NL + drugs.MAX_BOLUS_NL
    lim = Limits.from_nl(pl_per_step, rate, rate, day)
    if pass_excess_pl > 0:
        lim = Limits(lim.max_rate_steps_per_h, (rate * 1000 - pass_excess_pl) // pl_per_step,
                     (day * 1000 - pass_excess_pl) // pl_per_step)
    return lim


class Pump:
    def __init__(self, board, alarms, pl_per_step, log=None, cal=None, detector=True):
        """detector False: the app's fallback after a bad calibration: the line is not watched, so the
        motor stays halted (H_INTERNAL) whatever is acknowledged, until a good calibration and a restart."""
        self.motor = getattr(board, "motor", None)  # boards without a motor run the link only
        self.clock = board.clock
        self.alarms = alarms
        self.log = log
        # rotor index sensor: only with the calibration that says what a pass is (a fallback Pump built
        # without a calibration ignores it)
        self.rotor = getattr(board, "rotor", None) if cal is not None else None
        self.idx = None  # rotor.Index over it
        if self.rotor is not None:
            spp = cal.get("steps_per_pass_milli")
            if spp is None:
                raise ValueError("steps_per_pass_milli missing from the calibration of a board with a rotor sensor")
            # LimitError (a ValueError) names a bad value
            self.dosing = Dosing(pl_per_step, cal.get("pulsation_ppm"), spp)
            self.idx = Index(self.rotor, spp, rotor_magnets(cal))
        else:
            self.dosing = Dosing(pl_per_step)
        self.reservoir = Reservoir()
        self.guard = Guard(hard_limits(pl_per_step, self.dosing.pass_excess_pl), self.clock)
        self.therapy = None
        self.halt = 0
        self.tod_ms = 0
        self._last = self.clock.ticks_ms()
        self.backlog = 0  # steps granted by the guard, not yet handed to the motor
        self.enabled = False  # motor enabled (a prescription runs and nothing halts it)
        # volumes (nL): since the last refill (< 2**30, persisted with the reserve mark), lifetime, today
        self.delivered_nl = 0
        self.reserved_nl = 0
        self.total_nl = 0
        self.day_nl = 0
        self.programmed_nl = 0
        self.need_save = False  # a halt to latch on flash: full checkpoint now
        self.need_mark = False  # the reserve mark is (nearly) reached: move it now (store.save_mark)
        self.reserve_waits = 0  # ticks that held steps back for the checkpoint
        self.relearn = False  # the line relearns its baseline when delivery resumes (_RELEARN_AFTER)
        self.other_sensor_fault = False  # another sensor (battery) holds SENSOR_FAULT: not cleared here
        self.cal_refused = not detector  # H_INTERNAL is never released (release())
        # line safety: the occlusion detector over the pressure sensor (none without a sensor or a motor);
        # ValueError names a bad calibration value
        self.line = Line(self, getattr(board, "pressure", None) if detector and self.motor is not None else None,
                         cal, pl_per_step, TICK_MS)

    # -- per tick (no allocation) ----------------------------------------------------------------
    def running(self):
        th = self.therapy
        return th is not None and not self.halt and not th.suspended

    def tick(self, now):
        el = self.clock.ticks_diff(now, self._last)
        self._last = now
        if el < 0:
            el = 0
        tod = self.tod_ms + el
        if tod >= DAY_MS:
            tod %= DAY_MS
        self.tod_ms = tod
        motor = self.motor
        if motor is None:
            return
        self._deliver(now, el, tod, motor)
        if self.line.occ is not None:
            self.line.sense(now, el)

    def _deliver(self, now, el, tod, motor):
        self._count(now, motor)
        if not self.running():
            if self.enabled:
                self.halt_motor()
            return
        if not self.enabled:
            self.enabled = True
            if self.relearn:
                self.relearn = False
                self.line.reset()
            motor.enable(True)
        r = self.reservoir
        if r.is_empty():
            self.stop(halts.H_EMPTY, alarms.RESERVOIR_EMPTY)
            return
        if r.is_low():
            self.alarms.raise_alarm(alarms.RESERVOIR_LOW, now)
        if motor.fault():
            self.stop(halts.H_STALL, alarms.STALL)
            return
        self._dose(now, el, tod)
        if self.backlog and not motor.busy():
            self._move(now, motor)

    def _count(self, now, motor):
        """The steps the motor confirmed, and the rotor index's edge or silent stall."""
        c = motor.take_confirmed()
        if c:
            self._confirmed(c, now)
        if self.idx is not None:
            self._index(self.idx)

    def _index(self, idx):
        r = idx.read()
        if r == R_EDGE:
            self.reservoir.draw_pl(self.dosing.index_edge(idx.edge_batch, idx.lead))
            idx.steps = self.dosing.phase_steps  # the batch's steps after the edge
        elif r == R_STALL:
            nl = (idx.steps - self.dosing.spp_milli // 1000) * self.dosing.pl_per_step // 1000
            self.safety_stop(alarms.STALL, S_STALL, nl if nl < 0xFFFFFFFF else 0xFFFFFFFF)

    def _dose(self, now, el, tod):
        """This tick's steps from dosing, as many as the guard allows, onto the backlog."""
        steps = self.dosing.tick(self.therapy, el, tod)
        if steps:
            n = self.guard.allowance(now, self.dosing.in_flight - steps)
            if n < steps:
                self.dosing.withhold(steps - n)
            else:
                n = steps
            self.backlog += n

    def _move(self, now, motor):
        """The backlog to the idle motor in one move, unless it would deliver past the reserve mark."""
        if store.estimate_nl(self) > self.reserved_nl:
            self.need_mark = True  # never deliver past the persisted mark: wait for it to move
            self.reserve_waits += 1
            return
        n = self.backlog
        if n > _MAX_MOVE_STEPS:
            n = _MAX_MOVE_STEPS
        p = _SPREAD_US // n
        if p < _PERIOD_MIN_US:
            p = _PERIOD_MIN_US
        elif p > _PERIOD_MAX_US:
            p = _PERIOD_MAX_US
        motor.move(n, p & ~1)
        self.backlog -= n
        line = self.line
        line.asked += n  # the detector's count, and the move it waits for
        line.move_n = n
        line.move_t = now

    def safety_stop(self, alarm, kind, nl):
        """Stop for a safety finding: the halt of `alarm` (the halt table), a SAFETY record of kind."""
        self.log_safety(kind, self.line.pressure_pa, nl)
        self.stop(halts.H_BY_ALARM[alarm], alarm)

    def log_safety(self, kind, pressure_pa, nl):
        if self.log is not None:
            try:
                self.log.append_raw(eventlog.SAFETY, struct.pack(_SAFETY_FMT, kind, pressure_pa, nl if nl > 0 else 0))
            except Exception:  # a failing log must not keep the motor running
                pass

    def condition_gone(self, code):
        """An alarm's condition ended: it clears if acknowledged, and so does its halt."""
        if code == alarms.SENSOR_FAULT and self.other_sensor_fault:
            return
        if self.alarms.is_present(code):
            self.alarms.clear_condition(code)
        halts.release_inactive(self)

    def _book(self, c, now):
        """c confirmed steps into every count that follows them (detector, rotor index, dosing,
        reservoir, guard); returns the guard's verdict (True: a limit is exceeded)."""
        self.line.confirmed += c
        if self.idx is not None:
            self.idx.confirmed(c)
        self.reservoir.draw_pl(self.dosing.confirm(c))
        return self.guard.record(c, now)

    def _confirmed(self, c, now):
        if self._book(c, now):
            self.stop(halts.H_GUARD, alarms.DOSE_GUARD)
        elif self.dosing.over_confirmed > _MISMATCH_STEPS:
            self.stop(halts.H_MISMATCH, alarms.STEP_MISMATCH)

    # -- stopping (may allocate: not the steady state) --------------------------------------------
    def halt_motor(self):
        """Motor stopped and disabled now (not at the next tick); what it emitted is confirmed; what was
        asked and not given is dropped; a running bolus is cancelled and logged (never resumed)."""
        self.enabled = False
        m = self.motor
        if m is None:
            return
        try:
            m.stop()
            c = m.take_confirmed()
            if c:
                self._book(c, self._last)  # stopping already: a guard verdict changes nothing
        finally:
            self.line.motor_stopped()
            m.enable(False)
            self.enabled = False
            self.dosing.abandon()
            self.backlog = 0
            th = self.therapy
            if th is not None and th.bolus_kind is not None:
                left = th.cancel_bolus()[1]
                if self.log is not None:
                    try:
                        self.log.append(eventlog.BOLUS_ABANDONED, left)
                    except Exception:  # a failing log must not keep the motor running
                        pass

    def stop(self, bit, alarm):
        """Halt delivery for a reason (H_*) and raise its alarm; the halt is saved at once (it latches
        across a reset)."""
        self.halt |= bit
        self.need_save = True
        if bit & halts.RELEARN_AFTER:
            self.relearn = True
        try:
            self.halt_motor()
        finally:
            if bit == halts.H_STALL and self.idx is not None:  # where the rotor stands is unknown now
                self.idx.clear()
                self.dosing.forget_phase()
            self.alarms.raise_alarm(alarm)

    def release(self, bit):
        """The cause of a halt was dealt with (refill, acknowledged alarm): delivery may resume."""
        if self.cal_refused:
            bit &= ~halts.H_INTERNAL
        self.halt &= ~bit

    # -- outside the tick ----------------------------------------------------------------------
    def set_tod(self, tod_ms):
        self.tod_ms = tod_ms % DAY_MS

    def account(self):
        """Fold the dosing counters into the totals; returns nL delivered since the last call."""
        d = self.dosing
        self.programmed_nl += d.take_programmed_nl()
        deliv = d.take_delivered_nl()
        self.delivered_nl += deliv
        self.total_nl += deliv
        self.day_nl += deliv
        return deliv

    def rate_now(self):
        th = self.therapy
        if th is None or not self.running():
            return 0
        return th.rate_nl_per_h(self.tod_ms)

    def set_pl_per_step(self, pl):
        self.dosing.set_pl_per_step(pl)
        self.guard.set_limits(hard_limits(pl, self.dosing.pass_excess_pl))
        self.line.set_pl_per_step(pl)

    def status(self):
        """Line safety and the rotor index for the status op (allocates)."""
        d = self.line.status()
        d["rotor"] = None if self.idx is None else self.idx.status(self.dosing)
        return d
