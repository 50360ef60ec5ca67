# Link ops of the app: reads (status, therapy, alarms, logs) and changes. Every change goes through
# auth (marked protocol.CHANGE), is validated whole before anything changes, is checkpointed before the
# reply (a reply "ok" means it is on flash), and is logged; a refused change names what and why,
# changes nothing, and is logged too (CHANGE_REFUSED "op:CODE", BOLUS_REFUSED, AUTH_FAILURE).
# The changes live in ops_therapy, ops_bolus and ops_admin: small modules, because compiling a source
# module on the board needs RAM in proportion to its size (the sim and a Pico flashed without .mpy).
import binascii
import gc

from itpump import LimitError, eventlog, halts, protocol

E_LIMIT = "LIMIT"  # a value outside its limit (LimitError: field, value, limit in the message)
E_MISMATCH = "MISMATCH"  # prescription and reservoir content disagree
E_HALTED = "HALTED"  # delivery is stopped by an alarm: acknowledge / refill first
E_NOT_ACTIVE = "NOT_ACTIVE"
E_STORE = "STORE"  # the change could not be saved: not applied
MAX_LOG_RECORDS = 200  # the largest "max" a host may ask for
LOG_PAGE_RECORDS = 48  # records actually sent per reply: the reply is built whole (list, hex, JSON,
# bytes), about 4 copies of ~100 B a record, and must fit the heap a Pico has left beside the firmware

# therapy refusal code -> eventlog.REFUSE_REASONS index
_REASON = {"LOCKOUT": 2, "MAX_PER_DAY": 1, "BUSY": 5, "SUSPENDED": 5, "BRIDGE": 5, "NOT_PROGRAMMED": 5,
           "LIMIT": 7, "limit_1h": 0, "limit_24h": 1, E_HALTED: 3, "RESERVOIR": 4}


class Refused(protocol.ProtocolError):
    """A refusal already logged by its op (no second CHANGE_REFUSED record)."""


def _change(app, name, fn):
    def handler(args):
        try:
            return fn(app, args)
        except Refused:
            raise
        except LimitError as e:
            app.journal.refused(name, E_LIMIT)
            raise protocol.ProtocolError(E_LIMIT, str(e))
        except protocol.ProtocolError as e:
            app.journal.refused(name, e.code)
            raise
        except ValueError as e:
            app.journal.refused(name, protocol.E_ARGS)
            raise protocol.ProtocolError(protocol.E_ARGS, str(e))
    return (handler, protocol.CHANGE)


def table(app):
    def read(fn):
        return lambda args: fn(app, args)

    t = {"ping": read(op_ping), "status": read(op_status), "therapy": read(op_therapy),
         "alarms": read(op_alarms), "logs": read(op_logs)}
    from itpump import ops_admin, ops_bolus, ops_therapy
    for name, fn in (("program", ops_therapy.op_program), ("bolus", ops_bolus.op_bolus),
                     ("patient_bolus", ops_bolus.op_patient_bolus), ("refill", ops_therapy.op_refill),
                     ("calibrate", ops_admin.op_calibrate), ("suspend", ops_therapy.op_suspend),
                     ("cancel_bolus", ops_therapy.op_cancel_bolus), ("time_set", ops_admin.op_time_set),
                     ("ack", ops_admin.op_ack), ("keys", ops_admin.op_keys), ("service", ops_admin.op_service)):
        t[name] = _change(app, name, fn)
    return t


def _save(app, undo):
    """Checkpoint a change; on failure undo it and refuse (nothing changed)."""
    try:
        app.checkpoint()
    except Exception as e:
        undo()
        app.store_failures += 1
        raise protocol.ProtocolError(E_STORE, "could not be saved (%s): not applied" % type(e).__name__)


def _therapy(app):
    th = app.pump.therapy
    if th is None:
        raise protocol.ProtocolError("NOT_PROGRAMMED", "no prescription programmed")
    return th


# -- reads --------------------------------------------------------------------------------------


def op_ping(app, args):
    protocol.check_args(args, {})
    return {"pong": True}


def op_status(app, args):
    protocol.check_args(args, {})
    st = app.status()
    p = app.pump
    p.account()
    th = p.therapy
    r = p.reservoir
    now = app.clock.ticks_ms()
    g = p.guard
    st.update({
        "running": p.running(), "halt": halts.names(p.halt), "rate_nl_per_h": p.rate_now(),
        "next_step": None if th is None else th.next_change(p.tod_ms), "tod_ms": p.tod_ms,
        "time_source": app.time_source,
        "wall_s": app.wall.now_s(), "reservoir_nl": r.volume_nl(), "reservoir_drug": r.drug,
        "reservoir_conc_ug_per_ml": r.conc_ug_per_ml,
        "days_to_empty": r.days_to_empty(th.day_volume_nl) if th is not None else -1,
        "delivered_today_nl": p.day_nl, "delivered_nl": p.delivered_nl, "delivered_total_nl": p.total_nl,
        "programmed_total_nl": p.programmed_nl, "reserved_nl": p.reserved_nl,
        "unconfirmed_nl": {"boot": app.booked_boot_nl, "total": app.booked_total_nl},
        "alarms": [a["code"] for a in app.alarms.active()],
        "therapy": None if th is None else _th_status(app, th),
        "pl_per_step": p.dosing.pl_per_step,
        "guard": {"delivered_1h_steps": g.delivered_1h_steps(now), "delivered_24h_steps": g.delivered_24h_steps(),
                  "violation": g.violation()},
        "dosing": {"skipped_ms": p.dosing.skipped_ms, "withheld_steps": p.dosing.withheld_steps,
                   "over_confirmed": p.dosing.over_confirmed, "reserve_waits": p.reserve_waits},
        "keys": app.identity.keys_state, "auth_locked": app.auth.locked(), "boot_count": app.boot_count,
        "log_seq": app.log.seq if app.log is not None else -1, "store_generation": app.store.generation,
        "store_failures": app.store_failures, "store_error": app.store_error, "motor": p.motor is not None,
        "line": p.status(), "pressure_pa": p.pressure_pa,
        "occlusion": None if p.occ is None else st_name(p),
        "battery_mv": 0 if app.battery is None else app.battery.mv,
        "battery": None if app.battery is None else app.battery.batt.status(),
        "supervisor": app.sup.status(now), "boot": app.boot_info, "serviced": app.serviced,
    })
    if app.cal_problem:
        st["cal_problem"] = app.cal_problem
    if app.state_problem:
        st["state_problem"] = app.state_problem
    if getattr(app, "last_error", None):
        st["last_error"] = app.last_error
    return st


def st_name(p):
    from itpump.occlusion import NAMES
    return NAMES[p.occ_state]


def _th_status(app, th):
    d = th.status()
    d.update({"drug": th.drug, "conc_ug_per_ml": th.conc_ug_per_ml, "mode": th.mode, "rx_id": app.rx_id,
              "day_volume_nl": th.day_volume_nl, "day_dose_ng": th.day_dose_ng})
    return d


def op_therapy(app, args):
    protocol.check_args(args, {})
    th = app.pump.therapy
    if th is None:
        return {"rx": None, "rx_id": app.rx_id}
    return {"rx": th.prescription(), "rx_id": app.rx_id, "summary": th.summary(), "status": th.status()}


def op_alarms(app, args):
    protocol.check_args(args, {})
    return {"active": app.alarms.active(), "recent": app.alarms.recent()}


def op_logs(app, args):
    """Records with seq > since, oldest first, hex of eventlog.encode() each; page with since = next."""
    protocol.check_args(args, {"since": (int, False, 0, protocol.MAX_INT), "max": (int, False, 1, MAX_LOG_RECORDS)})
    log = app.log
    if log is None:
        raise protocol.ProtocolError("NO_LOG", "the event log could not be opened: %s" % app.journal.error)
    gc.collect()  # the reply is the largest allocation the firmware makes: start from a clean heap
    n = args.get("max", LOG_PAGE_RECORDS)
    recs, problems = log.read(args.get("since", 0), n if n < LOG_PAGE_RECORDS else LOG_PAGE_RECORDS)
    out = [str(binascii.hexlify(eventlog.encode(*rec)), "ascii") for rec in recs]
    return {"records": out, "next": recs[-1][0] if recs else args.get("since", 0), "last_seq": log.seq,
            "first_seq": log.first_seq(), "problems": problems}
