# Boluses: clinician / prime (bolus op) and the patient's (link op or the board's button).
from micropython import const

from itpump import eventlog, halts, protocol
from itpump.ops import Refused, save_or_undo, therapy_of
from itpump.prescription import volume_nl

_E_HALTED = const("HALTED")  # delivery is stopped by an alarm (codes: ops.py)
# refusal code -> eventlog.REFUSE_REASONS index ("busy", 5, for any other)
_REASON = const((("limit_1h", 0), ("limit_24h", 1), ("MAX_PER_DAY", 1), ("LOCKOUT", 2), ("HALTED", 3),
                 ("RESERVOIR", 4), ("LIMIT", 7)))


def _refuse_bolus(journal, vol, code, msg):
    reason = 5
    for c, i in _REASON:
        if c == code:
            reason = i
    journal.event(eventlog.BOLUS_REFUSED, vol, reason)
    raise Refused(code, msg)


def _bolus_checks(p, journal, vol):
    """Refusals common to every bolus: halted delivery, reservoir, the guard's remaining room."""
    if p.halt:
        _refuse_bolus(journal, vol, _E_HALTED, "delivery is stopped (%s)" % ", ".join(halts.names(p.halt)))
    if p.reservoir.volume_nl() - p.reservoir.empty_nl < vol:
        _refuse_bolus(journal, vol, "RESERVOIR", "the reservoir holds %d nL usable, the bolus is %d nL" % (
            p.reservoir.volume_nl() - p.reservoir.empty_nl, vol))
    g = p.guard
    steps = (vol * 1000 + p.dosing.pl_per_step - 1) // p.dosing.pl_per_step
    now = p.clock.ticks_ms()
    if g.delivered_1h_steps(now) + steps > g.limits.max_1h_steps:
        _refuse_bolus(journal, vol, "limit_1h", "the bolus would pass the 1 h dose guard limit")
    if g.delivered_24h_steps(now) + steps > g.limits.max_24h_steps:
        _refuse_bolus(journal, vol, "limit_24h", "the bolus would pass the 24 h dose guard limit")


def _started(doc, journal, th):
    def undo():
        th.cancel_bolus()

    save_or_undo(doc, undo)  # the reserve mark now covers the whole bolus
    journal.event(eventlog.BOLUS_GIVEN, th.bolus_volume_nl)
    return {"kind": th.bolus_kind, "volume_nl": th.bolus_volume_nl, "rate_nl_per_h": th.bolus_rate}


def op_bolus(parts, args):
    protocol.check_args(args, {"kind": (str, True), "dose_ng": (int, False, 1, protocol.MAX_INT),
                        "duration_min": (int, True, 1, 1440), "volume_nl": (int, False, 1, protocol.MAX_INT)})
    p, doc, journal = parts
    th = therapy_of(p)
    kind = args["kind"]
    if kind == "clinician":
        if "dose_ng" not in args or "volume_nl" in args:
            raise protocol.ProtocolError(protocol.E_ARGS, "a clinician bolus takes dose_ng and duration_min")
        vol = volume_nl(args["dose_ng"], th.conc_ug_per_ml)
        _bolus_checks(p, journal, vol)
        r = th.clinician_bolus(args["dose_ng"], args["duration_min"])
    elif kind == "prime":
        if "dose_ng" in args:
            raise protocol.ProtocolError(protocol.E_ARGS, "a prime takes duration_min and optionally volume_nl")
        vol = args.get("volume_nl", th.catheter_volume_nl)
        _bolus_checks(p, journal, vol)
        r = th.prime(args["duration_min"], args.get("volume_nl"))
    else:
        raise protocol.ProtocolError(protocol.E_ARGS, "kind must be 'clinician' or 'prime', not '%s'" % kind[:32])
    if r is not None:
        _refuse_bolus(journal, vol, r[0], r[1])
    return _started(doc, journal, th)


def patient_bolus(parts, source):
    """The patient's request (link op or the board's button): same checks, same log. parts: the pump,
    the state document, the journal, the time."""
    p, doc, journal, time = parts
    th = therapy_of(p)
    vol = th.patient.volume_nl if th.patient is not None else 0
    if th.patient is None:
        _refuse_bolus(journal, 0, "NOT_PROGRAMMED", "no patient bolus in the prescription")
    _bolus_checks(p, journal, vol)
    r = th.request_patient_bolus(time.s)
    if r is not None:
        _refuse_bolus(journal, vol, r[0], r[1])
    res = _started(doc, journal, th)
    res["source"] = source
    return res


def op_patient_bolus(parts, args):
    protocol.check_args(args, {})
    return patient_bolus(parts, "link")
