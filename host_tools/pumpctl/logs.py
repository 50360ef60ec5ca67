"""Event log on the host: decode, export (table, csv, json), plot. The record format is the firmware's
(eventlog.py, imported); damaged input never stops the export. docs/pumpctl.md (logs.py)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO_ROOT, PumpctlError

_FW = str(REPO_ROOT / "firmware")
if _FW not in sys.path:
    sys.path.insert(0, _FW)
from itpump import alarms, eventlog  # noqa: E402  (the firmware's own modules: one format, one definition)

FORMATS = ("table", "csv", "json")
TICKS_PERIOD = 1 << 30  # rp2 ticks_ms wrap


@dataclass
class Decoded:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def record_dict(rec: tuple) -> dict:
    """A firmware record tuple (seq, ticks_ms, wall_s, code, data) as a plain dict."""
    seq, ticks, wall, code, data = rec
    return {
        "seq": seq,
        "ticks_ms": ticks,
        "wall_s": wall,
        "time": wall_iso(wall),
        "code": code,
        "event": eventlog.code_name(code),
        "fields": _named(eventlog.fields(code, data)),
    }


# Small-int fields shown by name (the firmware's value tables); an unknown value stays a number.
_VALUE_NAMES = {"reset_cause": eventlog.RESET_CAUSES, "reason": eventlog.REFUSE_REASONS,
                "role": eventlog.ROLES, "kind": eventlog.SAFETY_KINDS, "alarm": alarms.NAMES}


def _named(fields: dict) -> dict:
    out = dict(fields)
    for k, names in _VALUE_NAMES.items():
        v = out.get(k)
        if isinstance(v, int) and 0 <= v < len(names):
            out[k] = names[v]
    return out


def wall_iso(wall_s: int) -> str:
    """ISO-8601 UTC time of a record's wall_s, "" when the board had no time set."""
    if not wall_s:
        return ""
    t = datetime.datetime.fromtimestamp(eventlog.WALL_EPOCH_UNIX + wall_s, datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(data: bytes, source: str = "input") -> Decoded:
    """Records and problems from raw record bytes."""
    out = Decoded()
    nrec = 0
    last = 0
    for kind, off, item in eventlog.scan_bytes(bytes(data)):
        if kind == eventlog.REC:
            nrec += 1
            last = item[0]
            out.records.append(record_dict(item))
        else:
            out.problems.append(eventlog.describe(kind, off, item, nrec, last, f"{source}: "))
    return out


def load(path: str | Path) -> Decoded:
    """A segment file, or a directory of them (oldest first, by the first seq in their names)."""
    p = Path(path)
    if not p.exists():
        raise PumpctlError(f"{p}: no such file or directory")
    if p.is_file():
        return decode(p.read_bytes(), p.name)
    segs = sorted(q for q in p.iterdir() if q.name.startswith("ev") and q.name.endswith(".log"))
    if not segs:
        raise PumpctlError(f"{p}: no event log segments (ev*.log) in it")
    out = Decoded()
    for q in segs:
        d = decode(q.read_bytes(), q.name)
        out.records += d.records
        out.problems += d.problems
    return out


def _details(fields: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def export(records: list[dict], fmt: str) -> str:
    """records as text in fmt (table, csv or json)."""
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    cols = ("seq", "time", "ticks_ms", "event", "details")
    rows = [(str(r["seq"]), r["time"], str(r["ticks_ms"]), r["event"], _details(r["fields"])) for r in records]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "table":
        widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in [cols, *rows]]
        return "\n".join(lines) + "\n"
    raise PumpctlError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")


def timeline_s(records: list[dict]) -> list[float]:
    """Seconds since the first record: wall time where the board had it, else tick deltas
    (unwrapped at 2**30; a reboot restarts ticks, so the gap across it counts as 0)."""
    out: list[float] = []
    t = 0.0
    prev_wall = prev_ticks = None
    for r in records:
        if r["wall_s"] and prev_wall:
            t += r["wall_s"] - prev_wall
        elif prev_ticks is not None and r["event"] != "boot":
            t += ((r["ticks_ms"] - prev_ticks) % TICKS_PERIOD) / 1000.0
        out.append(t)
        prev_wall = r["wall_s"] or None
        prev_ticks = r["ticks_ms"]
    return out


def check_plot_path(png: str | Path) -> None:
    """Refuse a plot file matplotlib cannot write (by its extension) before any record is read."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    types = FigureCanvasBase.get_supported_filetypes()
    ext = Path(png).suffix.lower().lstrip(".")
    if ext not in types:
        raise PumpctlError(f"--plot {png}: unknown image type '{ext or '(none)'}' (use one of: "
                           f"{', '.join(sorted(types))})")


def plot(records: list[dict], png: str | Path, title: str = "itpump event log",
         drugs_by_rx: dict[int, str] | None = None, tz=None) -> dict:
    """Delivery (programmed vs delivered), programmed rate and reservoir over real dates, with alarms
    (by name), boluses, refills and prescription/drug changes marked, to png. Returns what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        raise PumpctlError("no records to plot")
    from . import timeline

    tl = timeline.build(records, drugs_by_rx)
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 8.5), gridspec_kw={"height_ratios": [3, 2, 2]})
    draw_timeline(fig, axes, tl, tz)
    refused = [t for t, r in zip(tl.times, records, strict=True) if r["event"] == "bolus_refused"]
    if refused:
        axes[1].plot([_date(t, tz) for t in refused], [0] * len(refused), "x", color="tab:gray", label="bolus refused")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title + ("" if tl.dated else " (board clock not set: dates placed from this computer's clock)"))
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return {"volume_points": len(tl.delivered), "rate_points": len(tl.rate), "boluses": len(tl.boluses),
            "refused": len(refused), "alarms": len(tl.alarms), "refills": len(tl.refills),
            "changes": len(tl.changes), "reservoir_points": len(tl.reservoir), "dated": tl.dated}


def _date(t: float, tz=None):
    return datetime.datetime.fromtimestamp(t, tz or datetime.UTC)


def draw_timeline(fig, axes, tl, tz=None, adjust: bool = True) -> None:
    """The three panels of --plot and the report: cumulative delivery, rate, reservoir. Marks are
    vertical rules on every panel; their labels sit in a band above the top panel (rotated, never under
    a legend); legends sit outside the plot area on the right."""
    import matplotlib.dates as mdates

    ax_v, ax_r, ax_s = axes
    d = [lambda s: [_date(t, tz) for t, _ in s], lambda s: [v for _, v in s]]
    ax_v.plot(d[0](tl.programmed), d[1](tl.programmed), "--", color="tab:gray", label="programmed")
    ax_v.plot(d[0](tl.delivered), d[1](tl.delivered), "-", color="tab:blue", lw=2, label="delivered")
    ax_v.set_ylabel("cumulative volume (uL)")
    if tl.rate:
        ax_r.step(d[0](tl.rate), d[1](tl.rate), where="post", color="tab:orange", label="programmed rate")
    ax_r.set_ylabel("rate (uL/h)")
    ax_s.plot(d[0](tl.reservoir), d[1](tl.reservoir), "-", color="tab:cyan", lw=2, label="reservoir")
    ax_s.set_ylabel("reservoir (mL)")
    ax_s.set_ylim(bottom=0)
    if tl.boluses:
        ax_r.plot([_date(t, tz) for t, _ in tl.boluses], [0] * len(tl.boluses), "^", color="tab:green", ms=8,
                  label="bolus given", clip_on=False)
    marks = ([(t, a, "tab:red") for t, a in tl.alarms] + [(t, f"refill {v:g} mL", "tab:blue") for t, v in tl.refills]
             + [(t, c, "tab:purple") for t, c in tl.changes])
    marks.sort()
    for t, _label, color in marks:
        for ax in axes:
            ax.axvline(_date(t, tz), color=color, alpha=0.6, lw=1, ls=":" if color != "tab:red" else "-")
    # labels: staggered in a band above the top panel, so neighbours and the legend never hide them
    last: list = []
    span = (max(tl.times) - min(tl.times)) or 1.0
    for t, label, color in marks:
        level = 0
        while level < len(last) and t - last[level] < span * 0.09:
            level += 1
        if level == len(last):
            last.append(t)
        else:
            last[level] = t
        ax_v.annotate(label, (_date(t, tz), 1.0), xycoords=("data", "axes fraction"), xytext=(2, 4 + 11 * level),
                      textcoords="offset points", color=color, fontsize=8, fontweight="bold", ha="left",
                      va="bottom", annotation_clip=False)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax is not ax_s:
            ax.tick_params(labelbottom=False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    loc = mdates.AutoDateLocator(tz=tz)
    ax_s.xaxis.set_major_locator(loc)
    ax_s.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=tz))
    ax_s.set_xlabel("date and time" + (f" ({tz})" if tz else " (UTC)"))
    if adjust:
        fig.subplots_adjust(left=0.08, right=0.83, top=0.9 - 0.02 * min(len(last), 4), bottom=0.08, hspace=0.12)
