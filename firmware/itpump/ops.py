# Link ops: the table of every op with the parts it uses (built once at boot), and the reads. A change is
# authenticated (protocol.CHANGE), validated whole, saved before its "ok" and logged; a refused one
# changes nothing and is logged too. The changes: ops_therapy, ops_bolus, ops_admin. docs/firmware.md.
import binascii
import gc

from itpump import LimitError, eventlog, halts, occlusion, protocol

E_LIMIT = "LIMIT"  # a value outside its limit (LimitError: field, value, limit in the message)
E_MISMATCH = "MISMATCH"  # prescription and reservoir content disagree
E_HALTED = "HALTED"  # delivery is stopped by an alarm: acknowledge / refill first
E_NOT_ACTIVE = "NOT_ACTIVE"
E_STORE = "STORE"  # the change could not be saved: not applied
E_SIM_ONLY = "SIM_ONLY"
SIM_OPS = ("sim.clock", "sim.advance", "sim.hang", "sim.reset", "sim.fault")
MAX_LOG_RECORDS = 200  # the largest "max" a host may ask for
LOG_PAGE_RECORDS = 48  # records actually sent per reply: the reply is built whole (list, hex, JSON,
# bytes), about 4 copies of ~100 B a record, and must fit the heap a Pico has left beside the firmware

# therapy refusal code -> eventlog.REFUSE_REASONS index
_REASON = {"LOCKOUT": 2, "MAX_PER_DAY": 1, "BUSY": 5, "SUSPENDED": 5, "BRIDGE": 5, "NOT_PROGRAMMED": 5,
           "LIMIT": 7, "limit_1h": 0, "limit_24h": 1, E_HALTED: 3, "RESERVOIR": 4}


class Refused(protocol.ProtocolError):
    """A refusal already logged by its op (no second CHANGE_REFUSED record)."""


class _Op:
    """One read of the table: fn(parts, args) with the parts it uses. An object, not a closure: on the
    virtual board a closure costs a heap object per captured variable (docs/firmware.md)."""

    def __init__(self, fn, parts):
        self.fn = fn
        self.parts = parts

    def __call__(self, args):
        return self.fn(self.parts, args)


class _Change(_Op):
    """A change: a refusal is logged (CHANGE_REFUSED "op:CODE"), a LimitError or ValueError answered
    as LIMIT or ARGS."""

    def __init__(self, fn, parts, name, journal):
        _Op.__init__(self, fn, parts)
        self.name = name
        self.journal = journal

    def __call__(self, args):
        try:
            return self.fn(self.parts, args)
        except Refused:
            raise
        except LimitError as e:
            self.journal.refused(self.name, E_LIMIT)
            raise protocol.ProtocolError(E_LIMIT, str(e))
        except protocol.ProtocolError as e:
            self.journal.refused(self.name, e.code)
            raise
        except ValueError as e:
            self.journal.refused(self.name, protocol.E_ARGS)
            raise protocol.ProtocolError(protocol.E_ARGS, str(e))


def table(p, doc, journal, time, sup, identity, board, status):
    """The ops by name, each with the parts it uses, built once at boot: p the pump, doc the state
    document (statedoc), journal, time (timekeeping), sup the supervisor, identity, board, status() the
    device's part of the status op. A board's own ops (the sim's fault injection) are added."""
    from itpump import ops_admin, ops_bolus, ops_therapy
    cal = getattr(board, "calibration", None) or {}
    rx = (p, doc, journal)
    calibrated = (p, doc, journal, cal)
    timed = (p, doc, journal, time)
    held = (p, doc, journal, sup, board)
    t = {"ping": _Op(op_ping, None), "status": _Op(op_status, (status, p, doc, time)),
         "therapy": _Op(op_therapy, (p, doc)), "alarms": _Op(op_alarms, p.alarms),
         "logs": _Op(op_logs, journal)}  # type: dict
    for name, fn, parts in (
            ("program", ops_therapy.op_program, rx),
            ("refill", ops_therapy.op_refill, calibrated),
            ("suspend", ops_therapy.op_suspend, held),
            ("cancel_bolus", ops_therapy.op_cancel_bolus, rx),
            ("bolus", ops_bolus.op_bolus, rx),
            ("patient_bolus", ops_bolus.op_patient_bolus, timed),
            ("calibrate", ops_admin.op_calibrate, calibrated),
            ("time_set", ops_admin.op_time_set, timed),
            ("ack", ops_admin.op_ack, (p, doc, sup)),
            ("keys", ops_admin.op_keys, identity),
            ("service", ops_admin.op_service, held)):
        t[name] = (_Change(fn, parts, name, journal), protocol.CHANGE)
    sim_ops = getattr(board, "sim_ops", None)
    if sim_ops is not None:
        for name, fn in sim_ops().items():
            t[name] = _Op(_board_op, fn)
    else:  # a real board refuses fault injection by name, not as an unknown op
        for name in SIM_OPS:
            t[name] = _Op(_sim_only, (name, board.name))
    return t


def _board_op(fn, args):
    """A board's op (args -> result) with ValueError reported as bad arguments."""
    try:
        return fn(args)
    except ValueError as e:
        raise protocol.ProtocolError(protocol.E_ARGS, str(e))


def _sim_only(parts, args):
    raise protocol.ProtocolError(E_SIM_ONLY, "'%s' exists only on the virtual board, not on %s" % parts)


def _save(doc, undo):
    """Save a change; on failure undo it and refuse (nothing changed)."""
    try:
        doc.save()
    except Exception as e:
        undo()
        doc.failures += 1
        raise protocol.ProtocolError(E_STORE, "could not be saved (%s): not applied" % type(e).__name__)


def _therapy(p):
    th = p.therapy
    if th is None:
        raise protocol.ProtocolError("NOT_PROGRAMMED", "no prescription programmed")
    return th


# -- reads --------------------------------------------------------------------------------------


def op_ping(parts, args):
    protocol.check_args(args, {})
    return {"pong": True}


def op_status(parts, args):
    protocol.check_args(args, {})
    status, p, doc, time = parts
    st = status()
    p.account()
    th = p.therapy
    r = p.reservoir
    g = p.guard
    st.update({
        "running": p.running(), "halt": halts.names(p.halt), "rate_nl_per_h": p.rate_now(),
        "next_step": None if th is None else th.next_change(p.tod_ms), "tod_ms": p.tod_ms,
        "time_source": time.source,
        "wall_s": time.wall.now_s(), "reservoir_nl": r.volume_nl(), "reservoir_drug": r.drug,
        "reservoir_conc_ug_per_ml": r.conc_ug_per_ml,
        "days_to_empty": r.days_to_empty(th.day_volume_nl) if th is not None else -1,
        "delivered_today_nl": p.day_nl, "delivered_nl": p.delivered_nl, "delivered_total_nl": p.total_nl,
        "programmed_total_nl": p.programmed_nl, "reserved_nl": p.reserved_nl,
        "unconfirmed_nl": {"boot": doc.booked_boot_nl, "total": doc.booked_total_nl},
        "alarms": [a["code"] for a in p.alarms.active()],
        "therapy": None if th is None else th.status(),
        "pl_per_step": p.dosing.pl_per_step,
        "guard": {"delivered_1h_steps": g.delivered_1h_steps(time.clock.ticks_ms()),
                  "delivered_24h_steps": g.delivered_24h_steps(), "violation": g.violation()},
        "dosing": {"skipped_ms": p.dosing.skipped_ms, "withheld_steps": p.dosing.withheld_steps,
                   "over_confirmed": p.dosing.over_confirmed, "reserve_waits": p.reserve_waits},
        "boot_count": doc.boot_count, "store_generation": doc.store.generation, "store_failures": doc.failures,
        "store_error": doc.error, "motor": p.motor is not None, "line": p.status(), "pressure_pa": p.line.pressure_pa,
        "occlusion": None if p.line.occ is None else occlusion.NAMES[p.line.state], "serviced": doc.serviced,
    })
    if th is not None:
        st["therapy"].update({"drug": th.drug, "conc_ug_per_ml": th.conc_ug_per_ml, "mode": th.mode,
                              "rx_id": doc.rx_id, "day_volume_nl": th.day_volume_nl, "day_dose_ng": th.day_dose_ng})
    if doc.problem:
        st["state_problem"] = doc.problem
    return st


def op_therapy(parts, args):
    protocol.check_args(args, {})
    p, doc = parts
    th = p.therapy
    if th is None:
        return {"rx": None, "rx_id": doc.rx_id}
    return {"rx": th.prescription(), "rx_id": doc.rx_id, "summary": th.summary(), "status": th.status()}


def op_alarms(al, args):
    protocol.check_args(args, {})
    return {"active": al.active(), "recent": al.recent()}


def op_logs(journal, args):
    """Records with seq > since, oldest first, hex of eventlog.encode() each; page with since = next."""
    protocol.check_args(args, {"since": (int, False, 0, protocol.MAX_INT), "max": (int, False, 1, MAX_LOG_RECORDS)})
    log = journal.log
    if log is None:
        raise protocol.ProtocolError("NO_LOG", "the event log could not be opened: %s" % journal.error)
    gc.collect()  # the reply is the largest allocation the firmware makes: start from a clean heap
    n = args.get("max", LOG_PAGE_RECORDS)
    recs, problems = log.read(args.get("since", 0), n if n < LOG_PAGE_RECORDS else LOG_PAGE_RECORDS)
    out = [str(binascii.hexlify(eventlog.encode(*rec)), "ascii") for rec in recs]
    return {"records": out, "next": recs[-1][0] if recs else args.get("since", 0), "last_seq": log.seq,
            "first_seq": log.first_seq(), "problems": problems}
