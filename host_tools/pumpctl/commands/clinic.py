"""Clinic commands: drugs (the firmware's own drug library), history (prescriptions sent from this
computer), web (the local clinician programmer), report (a one-page therapy report). The work is in
prescription.py, history.py, web/ and report.py; the text in render.py."""

from __future__ import annotations

import argparse
import sys

from . import DONE


def drugs(_s) -> dict:
    from .. import prescription

    d = prescription.drugs_module()
    return {n: dict(zip(("conc_min_ug_per_ml", "conc_max_ug_per_ml", "dose_min_ng_per_day", "dose_max_ng_per_day"),
                        d.limits(n), strict=True)) for n in d.names()}


def show_drugs(_lib: dict, _s) -> None:
    from rich.console import Console

    from .. import prescription, render

    con = Console(highlight=False)
    d = prescription.drugs_module()
    con.print(render.drugs_table(d))
    con.print(render.device_limits_text(d))
    con.print("The ranges bound what this benchtop mock accepts (sources in drugs.py); they are not clinical advice.")


def history_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--device", help="only this device id")
    sp.add_argument("--last", type=int, default=0, help="only the last N")


def history(s) -> list[dict]:
    from .. import history as hist

    return hist.entries(s.args.device)


def show_history(rows: list[dict], s) -> None:
    from rich.console import Console

    from .. import history as hist
    from .. import render

    con = Console(highlight=False)
    if not rows:
        con.print(f"no prescriptions sent from this computer yet ({hist.path()})")
    else:
        con.print(render.history_table(rows[-s.args.last:] if s.args.last else rows, hist.path()))


def web_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--http-port", type=int, default=8765, help="the page's port on 127.0.0.1 (default 8765)")


def web(s):
    from .. import web as webapp
    from ..cli import resolve_port

    try:
        webapp.serve(resolve_port(s.args.port), http_port=s.args.http_port, timeout_s=s.args.timeout,
                     say=lambda t: print(t, flush=True))
    except KeyboardInterrupt:
        pass
    print("pumpctl web: stopped; the link is free", file=sys.stderr)
    return DONE


def report_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--out", default="report.html", help="report.html (default), report.pdf or report.png")


def report(s):
    from .. import history as hist
    from .. import report as rpt
    from ..session import read_logs

    with s.session() as ses:
        st = ses.status()
        th = ses.read("therapy")
        got = read_logs(ses.client)
    drugs = hist.drugs_by_rx(st.get("device_id"))
    if th.get("rx_id") and th.get("rx"):
        drugs[th["rx_id"]] = th["rx"]["drug"]
    rep = rpt.build(st, th, got.records, drugs)
    out = rpt.write(rep, s.args.out)
    print(f"wrote {out}: {len(got.records)} log records, {len(rep.per_day)} days, {len(rep.alarms)} alarms, "
          f"{len(rep.refills)} refills")
    return DONE
