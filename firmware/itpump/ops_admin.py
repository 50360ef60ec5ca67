# Changes beside therapy: calibration, time, alarm acknowledgement, keys, service access.
from micropython import const

from itpump import alarms, eventlog, halts, protocol, supervisor
from itpump.dosing import calibrate as dosing_calibrate
from itpump.ops import save_or_undo

_E_NOT_ACTIVE = const("NOT_ACTIVE")  # codes: ops.py


def op_calibrate(parts, args):
    protocol.check_args(args, {"measured_nl": (int, True, 1, protocol.MAX_INT),
                               "steps": (int, True, 1, protocol.MAX_INT)})
    p, doc, journal, cal = parts
    old = p.dosing.pl_per_step
    pl = dosing_calibrate(args["measured_nl"], args["steps"], old)
    p.account()
    p.set_pl_per_step(pl)
    save_or_undo(doc, lambda: p.set_pl_per_step(old))
    journal.event(eventlog.CALIBRATION, pl, cal.get("pressure_offset_pa", 0))
    return {"pl_per_step": pl, "previous_pl_per_step": old}


def op_time_set(parts, args):
    lo = eventlog.WALL_EPOCH_UNIX + 1
    protocol.check_args(args, {"unix_s": (int, True, lo, lo + 0x3FFFFFFE), "tz_min": (int, False, -720, 840)})
    p, doc, journal, time = parts
    wall = args["unix_s"] - eventlog.WALL_EPOCH_UNIX
    old = (time.wall.now_s(), time.tz_min, time.source, p.tod_ms)
    prev = time.set(wall, args.get("tz_min", 0))
    p.set_tod(time.tod_ms())
    time.new_day(p.tod_ms)

    def undo():
        time.set(old[0], old[1], old[2])
        p.set_tod(old[3])

    save_or_undo(doc, undo)
    journal.event(eventlog.TIME_SET, prev)
    return {"wall_s": wall, "previous_wall_s": prev, "tod_ms": p.tod_ms}


def op_ack(parts, args):
    """Acknowledge one alarm by name, or "all"; what that releases is the halts' rule (halts.py)."""
    protocol.check_args(args, {"code": (str, True)})
    p, doc, sup = parts
    name = args["code"]
    acked = halts.ack(p, sup, None if name == "all" else alarms.code_of(name))  # ValueError: the codes
    if acked is None:
        raise protocol.ProtocolError(_E_NOT_ACTIVE, "alarm %s is not active" % name)
    doc.policy.changed()  # the released halts are saved at the next checkpoint
    return {"acked": acked, "active": [a["code"] for a in p.alarms.active()]}


def op_keys(identity, args):
    """Service: install new role keys (hex); written to keys.json so they hold after a reset."""
    protocol.check_args(args, {"keys": (dict, True)})
    return {"roles": identity.set_keys(args["keys"])}


def op_service(parts, args):
    """Service access: delivery suspended safely (motor stopped now, a running bolus abandoned and
    logged), then the REPL opens (flashing, diagnosis). The next reset is announced to the supervisor
    as intentional. Resume: suspend {"on": false}, or a restart (after flashing)."""
    protocol.check_args(args, {})
    p, doc, journal, sup, board, link = parts
    th = p.therapy
    left = th.bolus_left_nl if th is not None and th.bolus_kind is not None else 0
    svc = False
    if th is not None and not th.suspended:
        from itpump.ops_therapy import op_suspend
        doc.serviced = True  # in the checkpoint op_suspend makes: a restart resumes
        try:
            op_suspend(parts, {"on": True})
        except Exception:
            doc.serviced = False
            raise
        svc = True
    supervisor.safe_state(board)  # motor stopped now, not at the next tick
    p.halt_motor()
    sup.note_intentional_reset()
    p.log_safety(halts.S_SERVICE, p.line.pressure_pa, left)
    link.sync_lock()  # suspended: open for mpremote
    return {"suspended": th is not None and th.suspended, "resume_on_restart": svc, "bolus_abandoned_nl": left,
            "repl": "open"}
