"""Therapy commands: provision, therapy, program, bolus, refill, calibrate, suspend/resume, alarms/ack,
time sync, service. The work is in session.py (reads, signed changes and their arguments) and
provision.py; the text in render.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import PumpctlError, UsageError


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


# -- provisioning -----------------------------------------------------------------------------------


def provision_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--force", action="store_true", help="replace existing keys (the old ones stop working)")


def provision(s) -> dict:
    from ..provision import provision as make_keys

    return make_keys(s.port, force=s.args.force, timeout_s=s.args.timeout, say=lambda t: print(t, file=sys.stderr))


def show_provision(r: dict, _s) -> None:
    print(f"provisioned {r['device_id']}: roles {', '.join(r['roles'])}; keystore {r['keystore']}; "
          "the board restarted with keys ok")


# -- the prescription -------------------------------------------------------------------------------


def therapy_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--toml", action="store_true", help="write it as a prescription file (clinical units) that "
                                                        "pumpctl program loads back to the same prescription")


def therapy(s) -> dict:
    import datetime

    from .. import prescription

    with s.session() as ses:
        rep = ses.read("therapy")
        dev = ses.status(fresh=False).get("device_id", "?") if s.args.toml else None
    if not s.args.toml:
        return rep
    if rep.get("rx") is None:
        raise PumpctlError("therapy --toml: the pump has no prescription to write")
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = prescription.to_toml(rep["rx"], f"prescription #{rep.get('rx_id')} running on {dev}, read {now}")
    return {"rx_id": rep.get("rx_id"), "toml": text}


def show_therapy(rep: dict, s) -> None:
    from .. import render

    if s.args.toml:
        print(rep["toml"], end="")
    else:
        _console().print(render.kv_table("current therapy", render.therapy_summary_rows(rep)))


def program_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("file", metavar="FILE.toml", help="the prescription in clinical units (examples/*.toml)")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def program(s) -> dict:
    from .. import history, prescription, render

    a = s.args
    if a.json and not a.yes:
        raise UsageError("program --json asks no question: add --yes")
    rx = prescription.load(a.file)  # validated offline first: a bad file never reaches the board
    with s.session() as ses:
        cur = ses.read("therapy")
        try:
            rows = prescription.diff(cur.get("rx"), rx)
        except prescription.PrescriptionError:  # the device's rx fails this host's checks: show new only
            rows = prescription.diff(None, rx)
        if not a.json:
            _console().print(render.diff_table(rows))
        if not any(r[3] for r in rows):
            return {"sent": False, "therapy": cur}
        if not a.yes and not _confirm(f"program {Path(a.file).name} into the pump?"):
            raise PumpctlError("not confirmed: nothing sent")
        ses.change("program", {"rx": rx})
        rep = ses.read("therapy")
        history.record(ses.device_id, rep.get("rx_id"), rep.get("rx") or rx, f"pumpctl program {Path(a.file).name}")
    return {"sent": True, "therapy": rep}


def show_program(r: dict, _s) -> None:
    from .. import render

    if not r["sent"]:
        print("the device already runs this prescription: nothing sent")
    else:
        _console().print(render.kv_table("programmed", render.therapy_summary_rows(r["therapy"])))


def _confirm(question: str) -> bool:
    from rich.markup import escape

    try:  # escaped: rich read "[y/N]" as markup and the prompt lost its default
        ans = _console(stderr=True).input(escape(f"{question} [y/N] "))
    except EOFError:
        print(file=sys.stderr)
        return False
    if not sys.stdin.isatty():
        print(file=sys.stderr)  # the answer was piped: end the prompt's line
    return ans.strip().lower() in ("y", "yes")


# -- changes ----------------------------------------------------------------------------------------


def bolus_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--dose-ug", help="clinician bolus dose in ug (decimals allowed, exact to 1 ng)")
    sp.add_argument("--minutes", metavar="N", help="how long it runs, in minutes (1 to 1440)")
    sp.add_argument("--prime", action="store_true", help="prime the catheter (default: its volume)")
    sp.add_argument("--volume-ul", help="prime volume in uL")
    sp.add_argument("--patient", action="store_true", help="the patient's bolus (patient key, prescription's dose)")


def bolus(s) -> dict:
    from ..session import OPTIONS
    from ..session import bolus_args as request

    a = s.args
    if a.patient:
        if a.dose_ug is not None or a.prime or a.volume_ul is not None or a.minutes is not None:
            raise UsageError("bolus --patient takes no dose or duration: the prescription sets them")
        op, args = "patient_bolus", None
    else:
        op, args = "bolus", request(a.dose_ug, a.minutes, a.prime, a.volume_ul)
    with s.session() as ses:
        return ses.change(op, args, options=OPTIONS)


def show_bolus(r: dict, _s) -> None:
    from .. import render

    print(render.bolus_text(r))


def refill_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--drug", required=True, help="its name in the drug library (pumpctl drugs lists them)")
    sp.add_argument("--conc-ug-per-ml", required=True, help="concentration in ug/mL (integer)")
    sp.add_argument("--added-ml", required=True, help="volume put in (mL)")
    sp.add_argument("--removed-ml", required=True, help="volume taken out before filling (mL)")
    sp.add_argument("--rx", metavar="FILE.toml", help="the prescription for a new drug/concentration")


def refill(s) -> dict:
    from .. import prescription
    from ..session import OPTIONS
    from ..session import refill_args as request

    a = s.args
    rx = prescription.load(a.rx) if a.rx else None
    args = request(a.drug, a.conc_ug_per_ml, a.added_ml, a.removed_ml, rx)
    with s.session() as ses:
        r = ses.change("refill", args, options=OPTIONS)
    s.notes["refill"] = args
    return r


def show_refill(r: dict, s) -> None:
    from .. import render

    if r.get("warning"):  # a pocket fill or a leak? the pump raised its refill-mismatch alarm too
        print(render.refill_warning(r), file=sys.stderr)
    print(render.refill_text(s.notes["refill"], r))


def calibrate_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--mass-mg", help="mass of water delivered, as the balance reads it (mg)")
    sp.add_argument("--water-temp-c", help="water temperature for its density, 15-30 C (default 20)")
    sp.add_argument("--measured-ul", help="or: the volume delivered, already in uL")
    from ..cli import whole_number
    from ..units import MAX_OP_INT

    sp.add_argument("--steps", type=whole_number(1, MAX_OP_INT), required=True, metavar="N",
                    help="confirmed microsteps that delivered it")


def calibrate(s) -> dict:
    from .. import render
    from ..session import OPTIONS
    from ..session import calibrate_args as request
    from ..units import mass_to_nl

    a = s.args
    args = request(a.measured_ul, a.steps, a.mass_mg, a.water_temp_c)  # bad input: nothing sent
    if a.mass_mg is not None and not a.json:
        t = 20 if a.water_temp_c is None else a.water_temp_c
        print(render.weighing_text(a.mass_mg, t, *mass_to_nl(a.mass_mg, t), a.steps))
    with s.session() as ses:
        return ses.change("calibrate", args, options=OPTIONS)


def show_calibrate(r: dict, _s) -> None:
    print(f"calibrated: {r['pl_per_step']} pL/step (was {r['previous_pl_per_step']})")


def _suspend(s, on: bool) -> dict:
    with s.session() as ses:
        return ses.change("suspend", {"on": on}, label="suspend" if on else "resume")


def suspend(s) -> dict:
    return _suspend(s, True)


def resume(s) -> dict:
    return _suspend(s, False)


def show_suspend(r: dict, _s) -> None:
    print("delivery suspended" if r.get("suspended") else "delivery resumed")


def alarms_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--recent", action="store_true", help="also the last alarm events")


def alarms(s) -> dict:
    with s.session() as ses:
        return ses.read("alarms")


def show_alarms(rep: dict, s) -> None:
    from .. import render

    con = _console()
    if rep.get("active"):
        con.print(render.alarms_table(rep["active"]))
    else:
        con.print("no active alarms")
    if rep.get("recent") and s.args.recent:
        con.print(render.recent_alarms_table(rep["recent"]))


def ack_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("code", metavar="CODE", help="the alarm's code as pumpctl alarms shows it (OCCLUSION ...), "
                                                 "or all")


def ack(s) -> dict:
    from ..session import alarm_code

    code = alarm_code(s.args.code)  # a code the firmware does not know: refused here, nothing signed
    with s.session() as ses:
        return ses.change("ack", {"code": code})


def show_ack(r: dict, _s) -> None:
    print(f"acknowledged: {', '.join(r.get('acked', [])) or 'none'}; still active: "
          f"{', '.join(r.get('active', [])) or 'none'}")


def time_sync(s) -> dict:
    from ..session import time_sync_args

    args = time_sync_args()
    s.notes["tz_min"] = args["tz_min"]
    with s.session() as ses:
        return ses.change("time_set", args)


def show_time_sync(r: dict, s) -> None:
    from .. import render

    print(render.clock_set_text(r, s.notes["tz_min"]))


def service(s) -> dict:
    with s.session() as ses:
        return ses.change("service", None)


def show_service(r: dict, _s) -> None:
    print("service access: " + ("delivery suspended, " if r.get("suspended") else "")
          + f"REPL {r.get('repl', '?')} (pumpctl flash / mpremote now; pumpctl restart, then resume)")
