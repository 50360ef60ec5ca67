"""Clinic commands: drugs (the firmware's own drug library), history (prescriptions sent from this
computer), web (the local clinician programmer), report (a one-page therapy report). The work is in
prescription.py, history.py, web/ and report.py; the text in render.py."""

from __future__ import annotations

import argparse
import sys

from .. import UsageError
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
    sp.add_argument("--last", type=_count, default=0, metavar="N", help="only the last N")


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def history(s) -> list[dict]:
    from .. import history as hist

    rows = hist.entries(s.args.device)
    return rows[-s.args.last:] if s.args.last else rows


def show_history(rows: list[dict], s) -> None:
    from rich.console import Console

    from .. import history as hist
    from .. import render

    con = Console(highlight=False)
    if not rows:
        con.print(f"no prescriptions sent from this computer yet ({hist.path()})")
    else:
        con.print(render.history_table(rows, hist.path()))


def web_args(sp: argparse.ArgumentParser) -> None:
    from ..cli import whole_number

    sp.add_argument("--http-port", type=whole_number(1, 65535), default=8765, metavar="N",
                    help="the page's port on 127.0.0.1 (default 8765)")


def web(s):
    from .. import web as webapp

    if s.args.json:
        raise UsageError("web serves pages until Ctrl-C: it has no --json report")
    try:
        webapp.serve(s.port, http_port=s.args.http_port, timeout_s=s.args.timeout,
                     say=lambda t: print(t, flush=True))
    except KeyboardInterrupt:
        pass
    print("pumpctl web: stopped; the link is free", file=sys.stderr)
    return DONE


def report_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--out", default="report.html", help="report.html (default), report.pdf or report.png")


def report(s) -> dict:
    from .. import history as hist
    from .. import report as rpt
    from ..session import read_logs
    from .logs import check_out_path

    check_out_path(s.args.out, "--out")
    rpt.out_format(s.args.out)  # a suffix it cannot write: refused before the whole log is read
    with s.session() as ses:
        st = ses.status()
        th = ses.read("therapy")
        got = read_logs(ses.client)
    drugs = hist.drugs_by_rx(st.get("device_id"))
    if th.get("rx_id") and th.get("rx"):
        drugs[th["rx_id"]] = th["rx"]["drug"]
    rep = rpt.build(st, th, got.records, drugs)
    out = rpt.write(rep, s.args.out)
    return {"out": str(out), "log_records": len(got.records), "days": len(rep.per_day), "alarms": len(rep.alarms),
            "refills": len(rep.refills)}


def show_report(r: dict, _s) -> None:
    print(f"wrote {r['out']}: {r['log_records']} log records, {r['days']} days, {r['alarms']} alarms, "
          f"{r['refills']} refills")
