"""What the event log says happened, as time series for charts and reports (plot, report, web): delivered,
programmed, reservoir and marks. How records are placed in time: docs/pumpctl.md (timeline.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from . import logs as logsmod

UTC = datetime.UTC


@dataclass
class Timeline:
    times: list[float] = field(default_factory=list)  # epoch seconds per record
    dated: bool = False  # anchored on the board's wall clock
    delivered: list[tuple[float, float]] = field(default_factory=list)  # (t, uL cumulative)
    programmed: list[tuple[float, float]] = field(default_factory=list)  # (t, uL cumulative)
    rate: list[tuple[float, float]] = field(default_factory=list)  # (t, uL/h programmed)
    reservoir: list[tuple[float, float]] = field(default_factory=list)  # (t, mL)
    alarms: list[tuple[float, str]] = field(default_factory=list)
    boluses: list[tuple[float, float]] = field(default_factory=list)  # (t, uL)
    refills: list[tuple[float, float]] = field(default_factory=list)  # (t, mL in the reservoir after)
    changes: list[tuple[float, str]] = field(default_factory=list)  # (t, "rx #3 baclofen")
    safety: list[tuple[float, str, int]] = field(default_factory=list)  # (t, kind, pressure_pa)


def record_times(records: list[dict], now_s: float | None = None) -> tuple[list[float], bool]:
    """Epoch seconds for each record; True when anchored on the board's wall clock."""
    rel = logsmod.timeline_s(records)
    epoch = logsmod.eventlog.WALL_EPOCH_UNIX
    anchor = next(((i, r) for i, r in enumerate(records) if r.get("wall_s")), None)
    if anchor is not None:
        i, r = anchor
        t0 = epoch + r["wall_s"] - rel[i]
        return [epoch + rec["wall_s"] if rec.get("wall_s") else t0 + rel[j] for j, rec in enumerate(records)], True
    end = now_s if now_s is not None else datetime.datetime.now(UTC).timestamp()
    last = rel[-1] if rel else 0.0
    return [end - last + x for x in rel], False


def build(records: list[dict], drugs_by_rx: dict[int, str] | None = None, now_s: float | None = None,
          live: list[tuple[float, int]] | None = None) -> Timeline:
    """live: (epoch s, delivered_nl since the refill) from status replies, carrying the series on past the
    last record up to now (the log has a DELIVERY record only every hour)."""
    tl = Timeline()
    if not records:
        return tl
    tl.times, tl.dated = record_times(records, now_s)
    drugs_by_rx = drugs_by_rx or {}
    offset = last = 0  # delivered_nl since the last refill; offset: what was delivered before it
    prog_nl = 0.0
    rate = 0  # nL/h programmed
    t_rate = tl.times[0]
    fill_nl = None  # reservoir volume at the last refill
    rx_seen = None
    for t, r in zip(tl.times, records, strict=True):
        f, ev = r["fields"], r["event"]
        prog_nl += rate * max(0.0, t - t_rate) / 3600.0
        t_rate = t
        if ev == "delivery":
            last = f["delivered_nl"]
            tl.delivered.append((t, (offset + last) / 1000.0))
            tl.programmed.append((t, prog_nl / 1000.0))
            rate = f["rate_nl_per_h"]
            tl.rate.append((t, rate / 1000.0))
            if fill_nl is not None:
                tl.reservoir.append((t, max(0, fill_nl - last) / 1e6))
        elif ev == "refill":
            offset += last
            last = 0
            fill_nl = f["volume_nl"]
            tl.delivered.append((t, offset / 1000.0))
            tl.programmed.append((t, prog_nl / 1000.0))
            tl.refills.append((t, fill_nl / 1e6))
            tl.reservoir.append((t, fill_nl / 1e6))
        elif ev == "therapy_change":
            tl.programmed.append((t, prog_nl / 1000.0))
            rate = f["rate_nl_per_h"]
            tl.rate.append((t, rate / 1000.0))
            if f["rx_id"] != rx_seen:
                rx_seen = f["rx_id"]
                drug = drugs_by_rx.get(rx_seen)
                tl.changes.append((t, f"rx #{rx_seen}" + (f" {drug}" if drug else "")))
        elif ev == "bolus_given":
            prog_nl += f["volume_nl"]
            tl.boluses.append((t, f["volume_nl"] / 1000.0))
        elif ev == "alarm_raised":
            tl.alarms.append((t, str(f["alarm"])))
        elif ev == "safety":
            tl.safety.append((t, str(f["kind"]), f["pressure_pa"]))
    for t, last in sorted(live or []):
        if t < t_rate:
            continue
        prog_nl += rate * (t - t_rate) / 3600.0
        t_rate = t
        tl.delivered.append((t, (offset + last) / 1000.0))
        tl.programmed.append((t, prog_nl / 1000.0))
        if fill_nl is not None:
            tl.reservoir.append((t, max(0, fill_nl - last) / 1e6))
    if live and tl.rate:
        tl.rate.append((max(t for t, _ in live), rate / 1000.0))
    return tl


def per_day(tl: Timeline, tz: datetime.tzinfo | None = None) -> list[tuple[str, float, float]]:
    """(date, delivered uL, programmed uL) per calendar day, from the cumulative series."""
    out: dict[str, list[float]] = {}
    for series, k in ((tl.delivered, 0), (tl.programmed, 1)):
        prev = 0.0
        for t, v in series:
            day = datetime.datetime.fromtimestamp(t, tz or UTC).date().isoformat()
            out.setdefault(day, [0.0, 0.0])[k] += max(0.0, v - prev)
            prev = v
    return [(d, v[0], v[1]) for d, v in sorted(out.items())]


def fmt_time(t: float, tz: datetime.tzinfo | None = None) -> str:
    return datetime.datetime.fromtimestamp(t, tz or UTC).strftime("%Y-%m-%d %H:%M")
