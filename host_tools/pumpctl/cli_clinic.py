"""pumpctl clinic commands: drugs (the firmware's own drug library), history (prescriptions sent from this
computer), web (the local clinician programmer), report (a one-page therapy report). Thin: printing here,
the work in prescription.py, history.py, web/ and report.py."""

from __future__ import annotations

import json
import sys


def cmd_drugs(a) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import prescription
    from . import units as U

    d = prescription.drugs_module()
    if a.json:
        print(json.dumps({n: dict(zip(("conc_min_ug_per_ml", "conc_max_ug_per_ml", "dose_min_ng_per_day",
                                       "dose_max_ng_per_day"), d.limits(n), strict=True)) for n in d.names()},
                         indent=2))
        return 0
    t = Table(title="drug library (firmware/itpump/drugs.py: what the pump accepts)")
    for c in ("drug", "concentration", "daily dose"):
        t.add_column(c)
    for n in d.names():
        cmin, cmax, dmin, dmax = d.limits(n)
        t.add_row(n, f"{U.fmt_conc(cmin)} to {U.fmt_conc(cmax)}", f"{U.fmt_dose_rate(dmin)} to {U.fmt_dose_rate(dmax)}")
    con = Console(highlight=False)
    con.print(t)
    con.print(f"device: basal {U.fmt_volume(d.MIN_BASAL_NL_PER_DAY)}/day to "
              f"{U.fmt_volume(d.MAX_BASAL_NL_PER_DAY)}/day; "
              f"basal + boluses at most {U.fmt_volume(d.MAX_DAILY_NL)}/day; one bolus at most "
              f"{U.fmt_volume(d.MAX_BOLUS_NL)}; total rate at most {U.fmt_rate(d.MAX_RATE_NL_PER_H)}; "
              f"catheter at most {U.fmt_volume(d.MAX_CATHETER_NL)}")
    con.print("The ranges bound what this benchtop mock accepts (sources in drugs.py); they are not clinical advice.")
    return 0


def cmd_history(a) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import history, prescription

    rows = history.entries(a.device)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    con = Console(highlight=False)
    if not rows:
        con.print(f"no prescriptions sent from this computer yet ({history.path()})")
        return 0
    t = Table(title=f"prescriptions sent ({history.path()})")
    for c in ("when", "who", "device", "#", "from", "prescription"):
        t.add_column(c)
    for e in rows[-a.last:] if a.last else rows:
        t.add_row(str(e.get("at", "?"))[:16].replace("T", " "), e.get("who", "?"), e.get("device_id", "?"),
                  str(e.get("rx_id", "?")), e.get("source", "?"), describe(e.get("rx") or {}, prescription))
    con.print(t)
    return 0


def describe(rx: dict, prescription) -> str:
    """One line: drug, concentration, mode and dose in clinical units."""
    try:
        c = prescription.clinical(rx)
    except Exception:  # an entry written by another version: show it as stored
        return json.dumps(rx)
    parts = [f"{c.get('drug')} {c.get('concentration')}", str(c.get("mode"))]
    if "dose" in c:
        parts.append(str(c["dose"]))
    for s in c.get("flex", []):
        parts.append(f"{s.get('start')} {s.get('dose')}")
    if "periodic" in c:
        p = c["periodic"]
        parts.append(f"+ {p.get('dose')} every {p.get('every')} over {p.get('over')}")
    if "patient_bolus" in c:
        p = c["patient_bolus"]
        parts.append(f"patient bolus {p.get('dose')} over {p.get('over')}, lockout {p.get('lockout')}, "
                     f"{p.get('max_per_day')}/day")
    return ", ".join(parts)


def cmd_web(a) -> int:
    from . import web
    from .cli import resolve_port

    try:
        web.serve(resolve_port(a.port), http_port=a.http_port, timeout_s=a.timeout,
                  say=lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        pass
    print("pumpctl web: stopped; the link is free", file=sys.stderr)
    return 0


def drugs_by_rx(device_id: str | None) -> dict[int, str]:
    """Which drug each prescription id ran, from this computer's history (for marking drug changes)."""
    from . import history

    out: dict[int, str] = {}
    for e in history.entries(device_id):
        if isinstance(e.get("rx_id"), int) and isinstance(e.get("rx"), dict):
            out[e["rx_id"]] = str(e["rx"].get("drug"))
    return out


def cmd_report(a) -> int:
    from . import report
    from .cli_therapy import _session
    from .session import read_logs

    with _session(a) as s:
        st = s.status()
        th = s.read("therapy")
        got = read_logs(s.client)
    drugs = drugs_by_rx(st.get("device_id"))
    if th.get("rx_id") and th.get("rx"):
        drugs[th["rx_id"]] = th["rx"]["drug"]
    rep = report.build(st, th, got.records, drugs)
    out = report.write(rep, a.out)
    print(f"wrote {out}: {len(got.records)} log records, {len(rep.per_day)} days, {len(rep.alarms)} alarms, "
          f"{len(rep.refills)} refills")
    return 0


def add_commands(sub, with_port) -> None:
    sp = with_port(sub.add_parser("report", help="a one-page therapy report (HTML, PDF or PNG by --out's suffix)"))
    sp.add_argument("--out", default="report.html", help="report.html (default), report.pdf or report.png")
    sp.set_defaults(func=cmd_report)

    sp = with_port(sub.add_parser("web", help="the local web programmer on 127.0.0.1 (prints one-time links; "
                                              "owns the link while it runs)"))
    sp.add_argument("--http-port", type=int, default=8765, help="the page's port on 127.0.0.1 (default 8765)")
    sp.set_defaults(func=cmd_web)

    sp = sub.add_parser("drugs", help="the drug library: concentrations and daily doses the pump accepts")
    sp.add_argument("--json", action="store_true", help="machine-readable (the pump's integer units)")
    sp.set_defaults(func=cmd_drugs)

    sp = sub.add_parser("history", help="prescriptions sent from this computer (who, when, what)")
    sp.add_argument("--device", help="only this device id")
    sp.add_argument("--last", type=int, default=0, help="only the last N")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_history)


