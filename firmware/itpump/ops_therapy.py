# Therapy changes: program, refill (with the bridge to a new fluid), suspend, cancel a bolus.
from micropython import const

from itpump import alarms, eventlog, halts, protocol
from itpump.ops import save_or_undo, therapy_of
from itpump.reservoir import Reservoir
from itpump.therapy import Therapy

# Pump tubing from the head to the catheter: 150 mm of 1.02 mm ID (the bench layout of
# docs/hardware.md and boards/sim/rom/plant.py) = 123 uL; a board's calibration may set dead_volume_nl.
_PUMP_DEAD_VOLUME_NL = const(123000)
_E_MISMATCH = const("MISMATCH")  # codes: ops.py
_E_NOT_ACTIVE = const("NOT_ACTIVE")


def op_program(parts, args):
    protocol.check_args(args, {"rx": (dict, True)})
    p, doc, journal = parts
    new = Therapy(args["rx"])
    r = p.reservoir
    if r.drug is not None and (new.drug != r.drug or new.conc_ug_per_ml != r.conc_ug_per_ml):
        raise protocol.ProtocolError(_E_MISMATCH, "the reservoir holds %s at %d ug/mL, the prescription is for %s at "
                              "%d ug/mL: refill with it (refill with rx)" % (
                                  r.drug, r.conc_ug_per_ml, new.drug, new.conc_ug_per_ml))
    old = p.therapy
    if old is not None:
        if old.bridge_left_nl > 0:
            raise protocol.ProtocolError("BRIDGE", "a bridge after a refill is running (%d nL left): reprogram "
                                  "after it" % old.bridge_left_nl)
        new.adopt(old)
    _commit_therapy(parts, old, new)
    p.line.reset()  # a new program (rates, maybe a new line after surgery): learn the line afresh
    return {"rx_id": doc.rx_id, "summary": new.summary()}


def _commit_therapy(parts, old, new, undo_more=None):
    p, doc, journal = parts[0], parts[1], parts[2]
    p.therapy = new
    doc.rx_id += 1

    def undo():
        p.therapy = old
        doc.rx_id -= 1
        if undo_more is not None:
            undo_more()

    save_or_undo(doc, undo)
    if old is not None and old.bolus_kind is not None:
        kind, left = old.cancel_bolus()  # not carried over to the new prescription
        journal.event(eventlog.BOLUS_ABANDONED, left)
    journal.event(eventlog.THERAPY, p.rate_now(), doc.rx_id)


def op_refill(parts, args):
    protocol.check_args(args, {"drug": (str, True), "conc_ug_per_ml": (int, True, 1, protocol.MAX_INT),
                        "added_nl": (int, True, 1, protocol.MAX_INT), "removed_nl": (int, True, 0, protocol.MAX_INT),
                        "rx": (dict, False)})
    p, doc, journal, cal = parts
    drug, conc = args["drug"], args["conc_ug_per_ml"]
    old = p.therapy
    new = Therapy(args["rx"]) if "rx" in args else None
    if new is not None and (new.drug != drug or new.conc_ug_per_ml != conc):
        raise protocol.ProtocolError(_E_MISMATCH, "rx is for %s at %d ug/mL, the refill is %s at %d ug/mL" % (
            new.drug, new.conc_ug_per_ml, drug[:32], conc))
    if new is None and old is not None and (old.drug != drug or old.conc_ug_per_ml != conc):
        raise protocol.ProtocolError(_E_MISMATCH, "the prescription is for %s at %d ug/mL: a refill with %s at %d "
                              "ug/mL needs its prescription (rx)" % (old.drug, old.conc_ug_per_ml, drug[:32], conc))
    r = p.reservoir
    bridge_nl = 0
    if new is not None and old is not None:
        new.adopt(old)
        if r.drug is not None and (drug != r.drug or conc != r.conc_ug_per_ml):
            bridge_nl = new.start_bridge(old, cal.get("dead_volume_nl", _PUMP_DEAD_VOLUME_NL))
    p.account()
    before = r.to_dict()
    old_delivered, old_reserved = p.delivered_nl, p.reserved_nl
    info = r.refill(drug, conc, args["added_nl"], args["removed_nl"])  # validates all, then changes

    def undo_refill():
        p.reservoir = Reservoir.from_dict(before)
        p.delivered_nl, p.reserved_nl = old_delivered, old_reserved

    p.delivered_nl = 0  # delivered_nl counts per refill (stays a small int); total_nl goes on
    p.reserved_nl = 0
    if new is not None:
        _commit_therapy(parts, old, new, undo_refill)
    else:
        save_or_undo(doc, undo_refill)
    if not r.is_empty():
        p.release(halts.H_EMPTY)
        p.alarms.clear_condition(alarms.RESERVOIR_EMPTY)
    if not r.is_low():
        p.alarms.clear_condition(alarms.RESERVOIR_LOW)
    p.line.reset()  # the refill needle pressurised the reservoir side: learn the line afresh
    journal.event(eventlog.REFILL, args["added_nl"], info["expected_nl"])
    info["bridge_nl"] = bridge_nl
    info["rx_id"] = doc.rx_id
    return info


def op_suspend(parts, args):
    protocol.check_args(args, {"on": (bool, True)})
    p, doc, journal, sup = parts[0], parts[1], parts[2], parts[3]
    th = therapy_of(p)
    was = th.suspended
    kind, left = th.suspend(args["on"])
    svc = doc.serviced
    if not args["on"]:
        doc.serviced = False  # resumed by hand: no longer the service op's suspension

    def undo():
        th.suspended = was
        doc.serviced = svc

    save_or_undo(doc, undo)
    if not args["on"]:
        sup.clear_intentional_reset()  # no reset is coming: a later watchdog reset is a crash
        if svc:
            p.log_safety(halts.S_RESUME, 0, 0)
    if kind is not None:
        journal.event(eventlog.BOLUS_ABANDONED, left)
    journal.event(eventlog.THERAPY, 0 if args["on"] else p.rate_now(), doc.rx_id)
    return {"suspended": th.suspended}


def op_cancel_bolus(parts, args):
    protocol.check_args(args, {})
    p, doc, journal = parts
    th = therapy_of(p)
    kind, left = th.cancel_bolus()
    if kind is None:
        raise protocol.ProtocolError(_E_NOT_ACTIVE, "no bolus is running")
    journal.event(eventlog.BOLUS_ABANDONED, left)
    doc.policy.changed()
    return {"kind": kind, "not_given_nl": left}
