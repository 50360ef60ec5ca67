# Link ops: the table of every op with the parts it uses (built once at boot), and the reads. A change is
# authenticated (protocol.CHANGE), validated whole, saved before its "ok" and logged; a refused one
# changes nothing and is logged too. The changes: ops_therapy, ops_bolus, ops_admin. docs/firmware.md.
import binascii
import gc

from micropython import const

from itpump import LimitError, eventlog, halts, occlusion, protocol

# The error codes of the ops (stable: host tools and tests match on them): LIMIT, a value outside its limit
# (LimitError: field, value, limit in the message); STORE, the change could not be saved (not applied);
# SIM_ONLY; HALTED, delivery is stopped by an alarm (acknowledge / refill first; ops_bolus); MISMATCH,
# prescription and reservoir content disagree, NOT_ACTIVE (ops_therapy, ops_admin). Each a const where it
# is raised: a name shared between modules would take a slot in a module dict.
_E_LIMIT = const("LIMIT")
_E_STORE = const("STORE")
MAX_LOG_RECORDS = 200  # the largest "max" a host may ask for
_LOG_PAGE_RECORDS = const(48)  # records actually sent per reply: the reply is built whole (list, hex,
# JSON, bytes), about 4 copies of ~100 B a record, and must fit the heap a Pico has left beside the firmware

# Every op: its name, where its function op_<name> is (0: this module, a read; 1 ops_therapy, 2 ops_bolus,
# 3 ops_admin: a change) and the parts it gets (Table attributes: a tuple of them, or one alone). The
# table is data: a const tuple of a frozen module stays in flash, the parts tuple is made per request.
_RX = const(("pump", "doc", "journal"))
_OPS = const((
    ("ping", 0, None), ("status", 0, ("status", "pump", "doc", "time")), ("therapy", 0, ("pump", "doc")),
    ("alarms", 0, "pump"), ("logs", 0, "journal"),
    ("program", 1, _RX), ("refill", 1, ("pump", "doc", "journal", "cal")),
    ("suspend", 1, ("pump", "doc", "journal", "sup", "board")), ("cancel_bolus", 1, _RX),
    ("bolus", 2, _RX), ("patient_bolus", 2, ("pump", "doc", "journal", "time")),
    ("calibrate", 3, ("pump", "doc", "journal", "cal")), ("time_set", 3, ("pump", "doc", "journal", "time")),
    ("ack", 3, ("pump", "doc", "sup")), ("keys", 3, "identity"),
    ("service", 3, ("pump", "doc", "journal", "sup", "board", "link"))))
# a real board refuses the virtual board's fault injection by name, not as an unknown op
_SIM_OPS = const(("sim.clock", "sim.advance", "sim.hang", "sim.reset", "sim.fault"))


class Refused(protocol.ProtocolError):
    """A refusal already logged by its op (no second CHANGE_REFUSED record)."""


class Table:
    """The ops by name for protocol.dispatch (get, as a dict's), built once at boot: pump, doc the state
    document (statedoc), journal, time (timekeeping), sup the supervisor, identity, board, status() the
    device's part of the status op, link (its REPL lock), cal the board's calibration. An op's handler
    and its parts are made when it is asked for, so the table keeps no object per op (docs/firmware.md).
    A board's own ops (the sim's fault injection: board.sim_ops()) are added."""

    def __init__(self, pump, doc, journal, time, sup, identity, board, status, link):
        self.pump = pump
        self.doc = doc
        self.journal = journal
        self.time = time
        self.sup = sup
        self.identity = identity
        self.board = board
        self.status = status
        self.link = link
        self.cal = getattr(board, "calibration", None) or {}

    def get(self, name, default=None):
        """The handler(args) of a read, (handler, protocol.CHANGE) of a change, default if no such op."""
        for op, where, parts in _OPS:
            if op == name:
                if parts is not None:
                    parts = getattr(self, parts) if type(parts) is str else tuple(getattr(self, n) for n in parts)
                if where == 0:
                    fn = globals()["op_" + name]
                    return lambda args: fn(parts, args)
                from itpump import ops_admin, ops_bolus, ops_therapy
                fn = getattr((ops_therapy, ops_bolus, ops_admin)[where - 1], "op_" + name)
                return (lambda args: _change(fn, parts, name, self.journal, args)), protocol.CHANGE
        board_ops = getattr(self.board, "sim_ops", None)
        if board_ops is not None:
            fn = board_ops().get(name)
            if fn is not None:
                return lambda args: _board_op(fn, args)
        elif name in _SIM_OPS:
            return lambda args: _sim_only((name, self.board.name), args)
        return default

    def __iter__(self):
        board_ops = getattr(self.board, "sim_ops", None)
        for op in _OPS:
            yield op[0]
        for op in (_SIM_OPS if board_ops is None else board_ops()):
            yield op


def _change(fn, parts, name, journal, args):
    """A change: a refusal is logged (CHANGE_REFUSED "op:CODE"), a LimitError or ValueError answered
    as LIMIT or ARGS."""
    try:
        return fn(parts, args)
    except Refused:
        raise
    except LimitError as e:
        journal.refused(name, _E_LIMIT)
        raise protocol.ProtocolError(_E_LIMIT, str(e))
    except protocol.ProtocolError as e:
        journal.refused(name, e.code)
        raise
    except ValueError as e:
        journal.refused(name, protocol.E_ARGS)
        raise protocol.ProtocolError(protocol.E_ARGS, str(e))


def _board_op(fn, args):
    """A board's op (args -> result) with ValueError reported as bad arguments."""
    try:
        return fn(args)
    except ValueError as e:
        raise protocol.ProtocolError(protocol.E_ARGS, str(e))


def _sim_only(parts, args):
    raise protocol.ProtocolError("SIM_ONLY", "'%s' exists only on the virtual board, not on %s" % parts)


def save_or_undo(doc, undo):
    """Save a change; on failure undo it and refuse (nothing changed)."""
    try:
        doc.save()
    except Exception as e:
        undo()
        doc.failures += 1
        raise protocol.ProtocolError(_E_STORE, "could not be saved (%s): not applied" % type(e).__name__)


def therapy_of(p):
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


def op_alarms(p, args):
    protocol.check_args(args, {})
    return {"active": p.alarms.active(), "recent": p.alarms.recent()}


def op_logs(journal, args):
    """Records with seq > since, oldest first, hex of eventlog.encode() each; page with since = next."""
    protocol.check_args(args, {"since": (int, False, 0, protocol.MAX_INT), "max": (int, False, 1, MAX_LOG_RECORDS)})
    log = journal.log
    if log is None:
        raise protocol.ProtocolError("NO_LOG", "the event log could not be opened: %s" % journal.error)
    gc.collect()  # the reply is the largest allocation the firmware makes: start from a clean heap
    n = args.get("max", _LOG_PAGE_RECORDS)
    recs, problems = log.read(args.get("since", 0), n if n < _LOG_PAGE_RECORDS else _LOG_PAGE_RECORDS)
    out = [str(binascii.hexlify(eventlog.encode(*rec)), "ascii") for rec in recs]
    return {"records": out, "next": recs[-1][0] if recs else args.get("since", 0), "last_seq": log.seq,
            "first_seq": log.first_seq(), "problems": problems}
