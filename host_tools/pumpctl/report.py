"""A one-page therapy report (pumpctl report): device, drug and concentration, prescription, delivered vs
programmed per day, alarms, refills, next refill date, with the delivery/rate/reservoir charts.
HTML (charts as inline SVG, nothing to download) or PDF/PNG (one A4 page, matplotlib)."""

from __future__ import annotations

import datetime
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import PumpctlError, prescription, timeline, units


@dataclass
class Report:
    generated: str
    device: list[tuple[str, str]]
    therapy: list[tuple[str, str]]
    reservoir: list[tuple[str, str]]
    per_day: list[tuple[str, str, str, str]]
    alarms: list[tuple[str, str, str]]
    refills: list[tuple[str, str, str]]
    tl: timeline.Timeline
    tz: datetime.tzinfo | None
    notes: list[str] = field(default_factory=list)


def build(status: dict, therapy: dict, records: list[dict], drugs_by_rx: dict[int, str] | None = None,
          now: datetime.datetime | None = None) -> Report:
    from .web.views import reservoir_dates

    now = now or datetime.datetime.now().astimezone()
    tz = now.tzinfo
    tl = timeline.build(records, drugs_by_rx)
    dev = [("device", str(status.get("device_id", "?"))), ("board", f"{status.get('board', '?')}, firmware "
                                                                      f"{status.get('fw', '?')}"),
           ("clock", str(status.get("time_source") or "not set"))]
    rx = therapy.get("rx")
    th_rows: list[tuple[str, str]] = []
    if rx:
        th_rows.append(("prescription", f"#{therapy.get('rx_id')}"))
        for f, _o, new, _c in prescription.diff(None, rx):
            th_rows.append((f.lstrip("=").replace("_", " "), str(new)))
    else:
        th_rows.append(("therapy", "not programmed"))
    res: list[tuple[str, str]] = []
    vol = status.get("reservoir_nl")
    if isinstance(vol, int):
        res.append(("in the reservoir", units.fmt_volume_floor(vol) + (
            f" of {status['reservoir_drug']} {units.fmt_conc(status.get('reservoir_conc_ug_per_ml', 0))}"
            if status.get("reservoir_drug") else "")))
        day = (status.get("therapy") or {}).get("day_volume_nl", 0)
        dates = reservoir_dates(vol, day, now)
        res.append(("next refill (empty by)", dates["refill_by"]))
        res.append((f"low-reservoir alarm ({dates.get('low_at', '2 mL')})", dates["low_on"]))
    per_day = []
    for d, dv, pv in timeline.per_day(tl, tz):
        pct = f"{dv / pv * 100:.1f} %" if pv > 0 else "-"
        per_day.append((d, units.fmt_volume_floor(round(dv * 1000)), units.fmt_volume_floor(round(pv * 1000)), pct))
    states: dict[str, str] = {}
    alarms = []
    for t, r in zip(tl.times, records, strict=True):
        if r["event"] in ("alarm_raised", "alarm_acked", "alarm_cleared"):
            code = str(r["fields"]["alarm"])
            what = r["event"].split("_")[1]
            if what == "raised":
                alarms.append((timeline.fmt_time(t, tz), code, "raised"))
            else:
                for i in range(len(alarms) - 1, -1, -1):
                    if alarms[i][1] == code:
                        alarms[i] = (alarms[i][0], code, alarms[i][2] + f", {what} {timeline.fmt_time(t, tz)[11:]}")
                        break
            states[code] = what
    refills = []
    for t, r in zip(tl.times, records, strict=True):
        if r["event"] == "refill":
            f = r["fields"]
            refills.append((timeline.fmt_time(t, tz), units.fmt_volume_floor(f["volume_nl"]),
                            f"expected {units.fmt_volume_floor(f['expected_nl'])} before"))
    notes = [] if tl.dated else ["The board's clock was not set: times are placed from this computer's clock."]
    return Report(now.strftime("%Y-%m-%d %H:%M %Z"), dev, th_rows, res, per_day, alarms, refills, tl, tz, notes)


def _charts_figure(rep: Report, figsize=(10, 7)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .logs import draw_timeline

    fig, axes = plt.subplots(3, 1, sharex=True, figsize=figsize, gridspec_kw={"height_ratios": [3, 2, 2]})
    draw_timeline(fig, axes, rep.tl, rep.tz)
    return fig, plt


def html_text(rep: Report) -> str:
    e = html.escape

    def table(rows, head=None):
        h = "".join(f"<th>{e(c)}</th>" for c in head) if head else ""
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table>{'<tr>' + h + '</tr>' if h else ''}{body or '<tr><td>none</td></tr>'}</table>"

    svg = ""
    if rep.tl.times:
        fig, plt = _charts_figure(rep)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
        svg = buf.getvalue()
        svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.find("<svg"):], flags=re.S)
    style = ("body{font:13px/1.35 system-ui,sans-serif;margin:1.2em;color:#1c2833}h1{font-size:1.3em;margin:0}"
             "h2{font-size:.95em;margin:.9em 0 .3em;text-transform:uppercase;color:#5d6d7e}"
             "table{border-collapse:collapse}td,th{padding:.15em .6em;border-bottom:1px solid #d5d8dc;text-align:left}"
             ".cols{display:grid;grid-template-columns:1fr 1fr;gap:0 2em}svg{width:100%;height:auto}"
             "@page{size:A4;margin:12mm}")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>itpump therapy report</title>"
            f"<style>{style}</style></head><body><h1>itpump therapy report</h1><p>generated {e(rep.generated)}</p>"
            f"<div class=cols><div><h2>Device</h2>{table(rep.device)}<h2>Prescription</h2>{table(rep.therapy)}"
            f"</div><div><h2>Reservoir and next refill</h2>{table(rep.reservoir)}"
            f"<h2>Delivered vs programmed per day</h2>"
            f"{table(rep.per_day, ('date', 'delivered', 'programmed', 'ratio'))}"
            f"<h2>Alarms</h2>{table(rep.alarms, ('raised', 'alarm', 'course'))}"
            f"<h2>Refills</h2>{table(rep.refills, ('time', 'reservoir after', 'reconciliation'))}</div></div>"
            + "".join(f"<p><em>{e(n)}</em></p>" for n in rep.notes)
            + f"<h2>Charts</h2>{svg or '<p>no log records</p>'}"
            "<p><small>Benchtop mock intrathecal pump: not a medical device.</small></p></body></html>\n")


def _text_block(title: str, rows, head=None, width: int = 60) -> str:
    lines = [title.upper()]
    allrows = ([tuple(head)] if head else []) + [tuple(str(c) for c in r) for r in rows]
    if not allrows:
        return title.upper() + "\n  none"
    n = max(len(r) for r in allrows)
    widths = [max(len(r[i]) for r in allrows if i < len(r)) for i in range(n)]
    for r in allrows:
        lines.append("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()[:width])
    return "\n".join(lines)


def out_format(out: str | Path) -> str:
    """The report's format by its file's suffix (html, pdf, png), or a refusal naming the choices."""
    suffix = Path(out).suffix.lower()
    fmt = {".html": "html", ".htm": "html", ".pdf": "pdf", ".png": "png"}.get(suffix)
    if fmt is None:
        raise PumpctlError(f"report --out {out}: unknown report type '{suffix or '(none)'}': choose .html, .pdf "
                           "or .png")
    return fmt


def write(rep: Report, out: str | Path) -> Path:
    """Write the report; the format follows the suffix (.html, .pdf, .png)."""
    p = Path(out)
    fmt = out_format(p)
    try:
        if fmt == "html":
            p.write_text(html_text(rep), encoding="utf-8")
            return p
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .logs import draw_timeline

        fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait
        fig.text(0.05, 0.975, "itpump therapy report", fontsize=15, fontweight="bold", va="top")
        fig.text(0.95, 0.975, f"generated {rep.generated}", fontsize=8, ha="right", va="top")
        left = "\n\n".join([_text_block("Device", rep.device), _text_block("Prescription", rep.therapy)])
        right = "\n\n".join([
            _text_block("Reservoir and next refill", rep.reservoir, width=58),
            _text_block("Delivered vs programmed per day", rep.per_day[-7:],
                        ("date", "delivered", "programmed", "ratio")),
            _text_block("Alarms", rep.alarms[-8:], ("raised", "alarm", "course"), width=58),
            _text_block("Refills", rep.refills[-4:], ("time", "after", "reconciliation"), width=58)])
        fig.text(0.05, 0.945, left, fontsize=7, family="monospace", va="top")
        fig.text(0.5, 0.945, right, fontsize=7, family="monospace", va="top")
        for i, n in enumerate(rep.notes):
            fig.text(0.05, 0.64 - 0.012 * i, n, fontsize=7, style="italic")
        gs = fig.add_gridspec(3, 1, left=0.1, right=0.8, top=0.56, bottom=0.06, hspace=0.1, height_ratios=[3, 2, 2])
        axes = [fig.add_subplot(gs[0])]
        axes += [fig.add_subplot(gs[i], sharex=axes[0]) for i in (1, 2)]
        if rep.tl.times:
            draw_timeline(fig, axes, rep.tl, rep.tz, adjust=False)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        return p
    except OSError as e:
        raise PumpctlError(f"cannot write {p}: {e.strerror}") from None
