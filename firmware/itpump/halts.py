# Halts: what stops delivery and what releases it. The halt table (bits, names, alarms), the SAFETY
# kinds of stops and resumes, and the rules: an acknowledgement releases an event's halt at once, a
# condition's once its alarm is inactive too, safe mode when INTERNAL is acknowledged; an empty reservoir
# only a refill. Events vs conditions: alarms.TABLE. Reasons: docs/firmware.md ("Acknowledging an alarm").
import gc

from micropython import const

from itpump import alarms, supervisor

# Why delivery is halted (bits; 0 = may deliver). Each clears by its own action.
H_EMPTY = const(1)  # reservoir empty: refill
H_GUARD = const(2)  # dose guard violation: acknowledge DOSE_GUARD
H_MISMATCH = const(4)  # acknowledge STEP_MISMATCH
H_STALL = const(8)  # driver fault: acknowledge STALL
H_INTERNAL = const(16)  # exception in the tick, store failure: acknowledge INTERNAL
# These latch on a condition: released when the alarm is inactive (acknowledged and the condition gone)
H_OCCLUSION = const(32)
H_LEAK = const(64)
H_SENSOR = const(128)  # pressure sensor missing / frozen
H_BATTERY = const(256)  # battery at end of service
H_SAFE = const(512)  # boot loop (supervisor): until a clinician acknowledges INTERNAL; never persisted
H_CONDITION = const(H_OCCLUSION | H_LEAK | H_SENSOR | H_BATTERY)
# After these halts the line's pressure history says nothing about the running line (pressure near zero,
# or confirmed steps that moved nothing, or no readings): the detector relearns the baseline when delivery
# resumes, else the return to the true tip pressure reads as a rise the model cannot explain (a false
# OCCLUSION, seen in the e2e fault matrix after a disconnection and after a silent stall).
RELEARN_AFTER = const(H_STALL | H_LEAK | H_SENSOR)
# Saved with the state: every halt but safe mode (the supervisor keeps its own record).
SAVED = const(~H_SAFE)
# The halt table, a row of two per bit (row i is bit 1 << i): the name on the link, and the alarm code that
# halts and whose acknowledgement releases it (-1: none). Flat, not a tuple per row: 10 fewer objects; a
# const in flash, so the codes are alarms' numbers (tests/firmware/test_halts.py checks them).
HALTS = const((
    "reservoir_empty", 5,  # H_EMPTY: RESERVOIR_EMPTY (released by a refill, not the acknowledgement)
    "dose_guard", 3,  # H_GUARD: DOSE_GUARD
    "step_mismatch", 11,  # H_MISMATCH: STEP_MISMATCH
    "stall", 2,  # H_STALL: STALL
    "internal", 12,  # H_INTERNAL: INTERNAL
    "occlusion", 0,  # H_OCCLUSION: OCCLUSION
    "leak", 1,  # H_LEAK: LEAK
    "pressure_sensor", 10,  # H_SENSOR: SENSOR_FAULT
    "battery_eos", 8,  # H_BATTERY: BATTERY_EOS
    "safe_mode", -1,  # H_SAFE (acknowledging INTERNAL releases it: ack)
))
H_BY_ALARM = {HALTS[i + 1]: 1 << (i >> 1) for i in range(0, len(HALTS), 2) if HALTS[i + 1] != -1}
# The SAFETY record kinds of stops and resumes (positions in eventlog.SAFETY_KINDS; the line's: line.py)
S_BATTERY_EOS = const(5)
S_BOOT_LOOP = const(6)
S_SERVICE = const(7)
S_RESUME = const(8)
S_LATE_TASK = const(9)


def names(halt):
    """The link's names of the halt bits set in halt."""
    return [HALTS[i] for i in range(0, len(HALTS), 2) if halt & (1 << (i >> 1))]


def release_inactive(p):
    """Release pump p's condition halts whose alarm is no longer active (acknowledged and the condition
    gone)."""
    for i in range(0, len(HALTS), 2):
        bit = 1 << (i >> 1)
        if bit & H_CONDITION and p.halt & bit and not p.alarms.is_active(HALTS[i + 1]):
            p.halt &= ~bit


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
        bit = H_BY_ALARM.get(code, 0)
        if bit & H_CONDITION:
            continue  # released below, once the alarm is inactive (its condition gone too)
        if bit and bit != H_EMPTY:  # empty clears by a refill, not by a button
            if code == alarms.DOSE_GUARD:
                p.guard.clear_violation()
            if code == alarms.STALL:
                p.line.motor_stopped()  # steps lost to the stall are not a new stall
            p.release(bit)
        if code == alarms.INTERNAL and p.halt & H_SAFE:
            # the clinician's decision after diagnosing a boot loop: forget it, deliver again
            sup.clear_safe_mode()
            p.release(H_SAFE)
            p.log_safety(S_RESUME, 0, 0)
        if alarms.event(code) and not (code == alarms.INTERNAL and p.cal_refused):
            al.clear_condition(code)  # a refused calibration stays INTERNAL's condition: acknowledged, held
    release_inactive(p)
    return acked


def hold_internal(p):
    """No delivery until a clinician acknowledges INTERNAL (a bad state at boot); after a refused
    calibration, not even then (Pump.release): until a good calibration and a restart."""
    p.halt |= H_INTERNAL
    p.alarms.raise_alarm(alarms.INTERNAL)


def restore(p, halt):
    """Halts saved before a reset: held again with their alarms, a condition's alarm latched until
    acknowledged (whether the condition still holds is unknown after the reset). Not an empty reservoir
    (the tick finds it again) nor safe mode (the supervisor does)."""
    halt &= ~(H_EMPTY | H_SAFE)
    for code in H_BY_ALARM:
        bit = H_BY_ALARM[code]
        if halt & bit:
            p.halt |= bit
            p.alarms.raise_alarm(code)
            if bit & H_CONDITION:
                p.alarms.clear_condition(code)


def after_reset(p, info):
    """The supervisor's verdict on the reset (supervisor.boot): its alarms raised; in a boot loop (safe
    mode) the motor stays off until a clinician acknowledges INTERNAL. Returns info."""
    for code in info["alarms"]:
        p.alarms.raise_alarm(code)
    if info["safe_mode"]:
        p.halt |= H_SAFE
        p.log_safety(S_BOOT_LOOP, 0, info["wdt_resets"])
    return info


def fault(p, board):
    """Any exception in the loop: motor stopped now, INTERNAL halt and alarm. Raises nothing (the
    exception may be a MemoryError): the alarm is retried once on a collected heap."""
    p.halt |= H_INTERNAL
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
    p.log_safety(S_LATE_TASK, 0, task)
    supervisor.safe_state(board)
    try:
        p.stop(H_INTERNAL, alarms.INTERNAL)
    except Exception:
        pass
