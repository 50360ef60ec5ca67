"""Event log on the host: decode, export (table, csv, json), plot.

The record format is the firmware's: this module imports firmware/itpump/eventlog.py and never
restates it. Input is raw record bytes: segment files copied off the flash (a directory of
ev*.log), or the bytes the link returns. Damaged input never stops the export: every record that
checks out is decoded, and each damaged stretch becomes a problem line naming its record number and
byte offset.
"""

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


def plot(records: list[dict], png: str | Path, title: str = "itpump event log") -> dict:
    """Delivered volume and rate over time, boluses and alarms marked, to png. Returns what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        raise PumpctlError("no records to plot")
    ts = [t / 3600.0 for t in timeline_s(records)]
    vol_t, vol_ul, rate_t, rate_ulh = [], [], [], []
    boluses, refused, alarms = [], [], []
    offset = last = 0  # delivered_nl restarts at each refill: keep a running total across them
    for t, r in zip(ts, records, strict=True):
        f, ev = r["fields"], r["event"]
        if ev == "delivery":
            last = f["delivered_nl"]
            vol_t.append(t)
            vol_ul.append((offset + last) / 1000.0)
            rate_t.append(t)
            rate_ulh.append(f["rate_nl_per_h"] / 1000.0)
        elif ev == "refill":
            offset += last
            last = 0
        elif ev == "therapy_change":
            rate_t.append(t)
            rate_ulh.append(f["rate_nl_per_h"] / 1000.0)
        elif ev == "bolus_given":
            boluses.append((t, f["volume_nl"] / 1000.0))
        elif ev == "bolus_refused":
            refused.append(t)
        elif ev == "alarm_raised":
            alarms.append((t, f["alarm"]))
    fig, (ax_v, ax_r) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    ax_v.plot(vol_t, vol_ul, "-", color="tab:blue", label="delivered")
    ax_v.set_ylabel("delivered (uL)")
    ax_r.step(rate_t, rate_ulh, where="post", color="tab:orange", label="basal rate")
    ax_r.set_ylabel("rate (uL/h)")
    ax_r.set_xlabel("time (h)")
    for ax in (ax_v, ax_r):
        for i, (t, code) in enumerate(alarms):
            ax.axvline(t, color="tab:red", alpha=0.5, lw=1, label="alarm" if i == 0 and ax is ax_v else None)
            if ax is ax_v:
                ax.annotate(f"A{code}", (t, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                            textcoords="offset points", color="tab:red", fontsize=7)
    if boluses:
        ax_r.plot([b[0] for b in boluses], [0] * len(boluses), "^", color="tab:green", label="bolus given")
        for t, v in boluses:
            ax_r.annotate(f"{v:g}", (t, 0), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    if refused:
        ax_r.plot(refused, [0] * len(refused), "x", color="tab:gray", label="bolus refused")
    ax_v.legend(loc="upper left", fontsize=8)
    ax_r.legend(loc="upper left", fontsize=8)
    ax_v.set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return {"volume_points": len(vol_t), "rate_points": len(rate_t), "boluses": len(boluses),
            "refused": len(refused), "alarms": len(alarms)}
