"""Server-rendered SVG time charts for the web programmer: lines or steps over a dated axis, with marks
(alarms, boluses, refills, prescription changes) as labelled vertical rules. Plain SVG text: nothing to
download, no script, readable without a chart library."""

from __future__ import annotations

import datetime
import html
from dataclasses import dataclass, field

W, H = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 26, 34


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[float, float]]
    step: bool = False
    dash: str = ""


@dataclass
class Mark:
    t: float
    label: str
    color: str = "#c0392b"


@dataclass
class Chart:
    title: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    tz: datetime.tzinfo | None = None


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 10 ** -len(str(int(1 / raw)))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10, 20)), key=lambda s: abs((hi - lo) / s - n))
    first = (lo // step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            out.append(round(v, 10))
        v += step
    return out


_TIME_STEPS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400]


def _time_ticks(t0: float, t1: float, tz) -> list[tuple[float, str]]:
    span = max(t1 - t0, 60)
    step = next((s for s in _TIME_STEPS if span / s <= 7), _TIME_STEPS[-1])
    off = datetime.datetime.fromtimestamp(t0, tz).utcoffset() or datetime.timedelta(0)
    first = ((t0 + off.total_seconds()) // step + 1) * step - off.total_seconds()
    out = []
    t = first
    while t <= t1:
        d = datetime.datetime.fromtimestamp(t, tz)
        fmt = "%b %d" if step >= 86400 else ("%H:%M" if span < 86400 else "%b %d %H:%M")
        out.append((t, d.strftime(fmt)))
        t += step
    return out


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"


def svg(ch: Chart, width: int = W, height: int = H) -> str:
    pts = [p for s in ch.series for p in s.points]
    ts = [p[0] for p in pts] + [m.t for m in ch.marks]
    e = html.escape
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{e(ch.title)}" class="chart"><title>{e(ch.title)}</title>'
            f'<text x="{LEFT}" y="16" class="ct">{e(ch.title)}</text>')
    if not ts:
        return head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="cn">no data yet</text></svg>'
    t0, t1 = min(ts), max(ts)
    if t1 - t0 < 60:
        t0, t1 = t0 - 30, t1 + 30
    ys = [p[1] for p in pts] or [0.0]
    y0, y1 = min(0.0, min(ys)), max(ys)
    if y1 - y0 <= 0:
        y1 = y0 + 1
    y1 += (y1 - y0) * 0.08
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return TOP + ph - (v - y0) / (y1 - y0) * ph

    out = [head, f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="pa"/>']
    for v in _nice_ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="gr"/>'
                   f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="tk">{_fmt(v)}</text>')
    for t, label in _time_ticks(t0, t1, ch.tz):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP + ph}" y2="{TOP + ph + 4}" class="ax"/>'
                   f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tk">{e(label)}</text>')
    out.append(f'<text x="12" y="{TOP + ph / 2}" transform="rotate(-90 12 {TOP + ph / 2})" text-anchor="middle" '
               f'class="tk">{e(ch.y_label)}</text>')
    for m in ch.marks:
        out.append(f'<line x1="{x(m.t):.1f}" x2="{x(m.t):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="{m.color}" '
                   f'class="mk"><title>{e(m.label)}</title></line>')
    # labels staggered in three rows so neighbouring marks stay readable
    last_x = [-1e9, -1e9, -1e9]
    for m in sorted(ch.marks, key=lambda m: m.t):
        xm = x(m.t)
        row = next((i for i in range(3) if xm - last_x[i] > 8 + 6 * len(last_label(m))), 0)
        last_x[row] = xm
        anchor = "end" if xm > LEFT + pw - 80 else "start"
        dx = -3 if anchor == "end" else 3
        out.append(f'<text x="{xm + dx:.1f}" y="{TOP + 11 + 11 * row}" text-anchor="{anchor}" fill="{m.color}" '
                   f'class="ml">{e(m.label)}</text>')
    for s in ch.series:
        if not s.points:
            continue
        d = []
        for i, (t, v) in enumerate(s.points):
            if s.step and i:
                d.append(f"H{x(t):.1f}")
            d.append(("M" if i == 0 else "L") + f"{x(t):.1f},{y(v):.1f}")
        if s.step:
            d.append(f"H{x(t1):.1f}")
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<path d="{"".join(d)}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>')
    lx = LEFT + 6
    for s in ch.series:
        out.append(f'<rect x="{lx}" y="{height - 12}" width="14" height="3" fill="{s.color}"/>'
                   f'<text x="{lx + 18}" y="{height - 8}" class="lg">{e(s.label)}</text>')
        lx += 30 + 7 * len(s.label)
    out.append("</svg>")
    return "".join(out)


def last_label(m: Mark) -> str:
    return m.label
