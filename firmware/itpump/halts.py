# Halts: what stops delivery and what releases it. An acknowledgement silences an alarm; it releases an
# event's halt at once, a condition's halt once the condition is gone too (pump.release_inactive), safe
# mode when INTERNAL is acknowledged; an empty reservoir only by a refill. The halt table: pump.HALTS.
import gc

from itpump import alarms, pump, supervisor

# Alarms raised by an event, not by a condition the firmware keeps measuring (a stall or a runaway is
# seen again by the next tick if it persists): no sensor says when these are over, so the acknowledgement
# is the clinician's word that the cause is dealt with, and ends the alarm (a new occurrence sounds again).
_EVENT_ALARMS = (alarms.STALL, alarms.DOSE_GUARD, alarms.STEP_MISMATCH, alarms.INTERNAL, alarms.WATCHDOG_RESET)
# Saved with the state: every halt but safe mode (the supervisor keeps its own record).
SAVED = ~pump.H_SAFE


def names(halt):
    """The link's names of the halt bits set in halt."""
    t = pump.HALTS
    return [t[i] for i in range(0, len(t), 2) if halt & (1 << (i >> 1))]


def ack(p, sup, code):
    """A clinician acknowledges alarm code (None: every active one) on pump p. Returns the names
    acknowledged, or None when that one alarm is not active (nothing changed)."""
    al = p.alarms
    if code is None:
        codes = [alarms.code_of(a["code"]) for a in al.active()]
    elif al.is_active(code):
        codes = [code]
    else:
        return None
    acked = []
    for code in codes:
        if not al.ack(code):
            continue
        acked.append(alarms.NAMES[code])
        bit = pump.H_BY_ALARM.get(code, 0)
        if bit & pump.H_CONDITION:
            continue  # released below, once the alarm is inactive (its condition gone too)
        if bit and bit != pump.H_EMPTY:  # empty clears by a refill, not by a button
            if code == alarms.DOSE_GUARD:
                p.guard.clear_violation()
            if code == alarms.STALL:
                p.line.motor_stopped()  # steps lost to the stall are not a new stall
            p.release(bit)
        if code == alarms.INTERNAL and p.halt & pump.H_SAFE:
            # the clinician's decision after diagnosing a boot loop: forget it, deliver again
            sup.clear_safe_mode()
            p.release(pump.H_SAFE)
            p.log_safety(pump.S_RESUME, 0, 0)
        if code in _EVENT_ALARMS and not (code == alarms.INTERNAL and p.cal_refused):
            al.clear_condition(code)  # a refused calibration stays INTERNAL's condition: acknowledged, held
    p.release_inactive()
    return acked


def hold_internal(p):
    """No delivery until a clinician acknowledges INTERNAL (a bad state at boot); after a refused
    calibration, not even then (Pump.release): until a good calibration and a restart."""
    p.halt |= pump.H_INTERNAL
    p.alarms.raise_alarm(alarms.INTERNAL)


def restore(p, halt):
    """Halts saved before a reset: held again with their alarms, a condition's alarm latched until
    acknowledged (whether the condition still holds is unknown after the reset). Not an empty reservoir
    (the tick finds it again) nor safe mode (the supervisor does)."""
    halt &= ~(pump.H_EMPTY | pump.H_SAFE)
    for code in pump.H_BY_ALARM:
        bit = pump.H_BY_ALARM[code]
        if halt & bit:
            p.halt |= bit
            p.alarms.raise_alarm(code)
            if bit & pump.H_CONDITION:
                p.alarms.clear_condition(code)


def after_reset(p, info):
    """The supervisor's verdict on the reset (supervisor.boot): its alarms raised; in a boot loop (safe
    mode) the motor stays off until a clinician acknowledges INTERNAL. Returns info."""
    for code in info["alarms"]:
        p.alarms.raise_alarm(code)
    if info["safe_mode"]:
        p.halt |= pump.H_SAFE
        p.log_safety(pump.S_BOOT_LOOP, 0, info["wdt_resets"])
    return info


def fault(p, board):
    """Any exception in the loop: motor stopped now, INTERNAL halt and alarm. Raises nothing (the
    exception may be a MemoryError): the alarm is retried once on a collected heap."""
    p.halt |= pump.H_INTERNAL
    supervisor.safe_state(board)
    try:
        p.halt_motor()
    except Exception:
        pass
    try:
        p.alarms.raise_alarm(alarms.INTERNAL)
    except Exception:
        gc.collect()
        try:
            p.alarms.raise_alarm(alarms.INTERNAL)
        except Exception:
            pass


def late(p, board, task):
    """A supervised task (its index) missed its deadline: the watchdog will reset the board; the motor
    stops and the reason is logged first (the reset then counts toward the boot-loop guard)."""
    p.log_safety(pump.S_LATE_TASK, 0, task)
    supervisor.safe_state(board)
    try:
        p.stop(pump.H_INTERNAL, alarms.INTERNAL)
    except Exception:
        pass
