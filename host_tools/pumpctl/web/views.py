"""What the pages show, in clinical units, from the board's status and therapy replies and its event log."""

from __future__ import annotations

import datetime

from .. import prescription, units
from .. import timeline as tlmod
from . import charts


def _reservoir_module():
    prescription.prescription_module()
    from itpump import reservoir

    return reservoir


def dashboard(st: dict, therapy: dict, now: datetime.datetime | None = None) -> dict:
    """Panels of the dashboard (and the patient view): plain strings, ready for the template."""
    now = now or datetime.datetime.now().astimezone()
    th = st.get("therapy")
    d: dict = {"device": st.get("device_id", "?"), "board": st.get("board", "?"), "fw": st.get("fw", "?")}
    if th is None:
        d["state"], d["state_class"] = "not programmed", "idle"
    elif th.get("suspended"):
        d["state"], d["state_class"] = "suspended", "warn"
    elif st.get("running"):
        d["state"], d["state_class"] = "running", "ok"
    else:
        halt = ", ".join(st.get("halt") or [])
        d["state"], d["state_class"] = "stopped" + (f" ({halt})" if halt else ""), "bad"
    if th is not None:
        d["drug"] = f"{th.get('drug')} {units.fmt_conc(th.get('conc_ug_per_ml', 0))}"
        d["mode"] = f"{th.get('mode')}, prescription #{th.get('rx_id')}"
        d["daily"] = (f"{units.fmt_dose_rate(th.get('day_dose_ng', 0))} = "
                      f"{units.fmt_volume_per_day(th.get('day_volume_nl'))}")
        if th.get("bolus"):
            d["bolus"] = f"{th['bolus']} bolus running, {units.fmt_volume(th.get('bolus_left_nl', 0))} left"
    d["rate_now"] = units.fmt_rate(st.get("rate_nl_per_h"))
    nxt = st.get("next_step")
    if nxt:
        what = (units.fmt_rate(nxt["rate_nl_per_h"]) if "rate_nl_per_h" in nxt
                else f"bolus {units.fmt_volume(nxt['bolus_nl'])}")
        d["rate_next"] = f"{what} at {units.fmt_time_of_day(nxt['at_min'])} (in {units.fmt_duration(nxt['in_min'])})"
    else:
        d["rate_next"] = "no change scheduled"
    d["delivered_today"] = units.fmt_volume_floor(st.get("delivered_today_nl", 0))
    if th is not None and th.get("day_dose_ng") and th.get("day_volume_nl"):
        ng = -(-st.get("delivered_today_nl", 0) * th["conc_ug_per_ml"] // 1000)  # up: drug given never under-stated
        d["delivered_today"] += f" ({units.fmt_mass(ng)})"
    d["delivered_refill"] = units.fmt_volume_floor(st.get("delivered_nl", 0))
    d["delivered_total"] = units.fmt_volume_floor(st.get("delivered_total_nl", 0))
    vol = st.get("reservoir_nl")
    if vol is not None:
        d["reservoir"] = units.fmt_volume_floor(vol)
        if st.get("reservoir_drug"):
            d["reservoir"] += f" of {st['reservoir_drug']} {units.fmt_conc(st.get('reservoir_conc_ug_per_ml', 0))}"
        d.update(reservoir_dates(vol, (th or {}).get("day_volume_nl", 0), now))
    b = st.get("battery")
    if isinstance(b, dict):
        mv = b.get("avg_mv", b.get("mv"))
        d["battery"] = f"{b.get('state', '?')}" + (f", {mv / 1000:.2f} V" if mv is not None else "") + \
            (", FAULT" if b.get("fault") else "")
        d["battery_class"] = "ok" if b.get("state") in ("ok", "OK", "good") else "warn"
    elif st.get("battery_mv") is not None:
        d["battery"] = f"{st['battery_mv'] / 1000:.2f} V"
        d["battery_class"] = "ok"
    d["pressure"] = f"{st['pressure_pa'] / 1000:.1f} kPa" if isinstance(st.get("pressure_pa"), int) else "-"
    d["keys_state"] = str(st.get("keys", "?")) + (" (changes locked out)" if st.get("auth_locked") else "")
    d["clock"] = (st.get("time_source") or "not set")
    d["alarms"] = st.get("alarm_list") or [{"code": c} for c in st.get("alarms", [])]
    return d


def reservoir_dates(vol_nl: int, day_nl: int, now: datetime.datetime) -> dict:
    """Low-reservoir and empty (refill by) dates at the programmed daily volume."""
    r = _reservoir_module()
    out: dict = {}
    if day_nl <= 0:
        out["refill_by"] = out["low_on"] = "no flow programmed"
        return out
    for key, at_nl in (("low_on", r.LOW_NL), ("refill_by", r.EMPTY_NL)):
        left = vol_nl - at_nl
        if left <= 0:
            out[key] = "now" if key == "refill_by" else f"reached ({units.fmt_volume(at_nl)})"
        else:
            when = now + datetime.timedelta(days=left / day_nl)
            out[key] = f"{when:%Y-%m-%d} (in {units.days_text(left / day_nl)})"
    out["low_at"] = units.fmt_volume(r.LOW_NL)
    return out


def event_rows(records: list[dict], times: list[float], tz) -> list[dict]:
    rows = []
    for r, t in zip(records, times, strict=True):
        rows.append({"seq": r["seq"], "time": tlmod.fmt_time(t, tz), "event": r["event"],
                     "details": describe(r), "alarm": r["event"].startswith("alarm") or r["event"] == "safety"})
    return rows


def describe(r: dict) -> str:
    """A record's fields for a person: volumes and rates in uL, alarms by name."""
    f = r["fields"]
    parts = []
    for k, v in f.items():
        if isinstance(v, int) and k.endswith("_nl"):
            parts.append(f"{k[:-3].replace('_', ' ')} {units.fmt_volume(v)}")
        elif isinstance(v, int) and k.endswith("_nl_per_h"):
            parts.append(f"{k[:-9].replace('_', ' ')} {units.fmt_rate(v)}")
        elif k == "pressure_pa" and isinstance(v, int):
            parts.append(f"pressure {v / 1000:.1f} kPa")
        else:
            parts.append(f"{k.replace('_', ' ')} {v}")
    return ", ".join(parts)


def board_time(st: dict, host_s: float) -> float:
    """Epoch seconds of a status reply: the board's wall clock where set (the log's time base), else the host's."""
    w = st.get("wall_s")
    return tlmod.logsmod.eventlog.WALL_EPOCH_UNIX + w if w else host_s


def charts_svg(records: list[dict], samples: list[dict], drugs_by_rx: dict[int, str], tz, st: dict | None = None,
               host_s: float = 0.0) -> dict:
    """The charts page: delivery (programmed vs delivered), reservoir, pressure; marks on each."""
    live = [(x["t"], x["delivered_nl"]) for x in samples if isinstance(x.get("delivered_nl"), int)]
    if st and isinstance(st.get("delivered_nl"), int):
        live.append((board_time(st, host_s), st["delivered_nl"]))
    tl = tlmod.build(records, drugs_by_rx, live=live)
    marks = ([charts.Mark(t, a, "#c0392b") for t, a in tl.alarms]
             + [charts.Mark(t, f"bolus {v:g} uL", "#27ae60") for t, v in tl.boluses]
             + [charts.Mark(t, f"refill {v:g} mL", "#2471a3") for t, v in tl.refills]
             + [charts.Mark(t, c, "#7d3c98") for t, c in tl.changes])
    delivery = charts.Chart("Delivery: programmed vs delivered (cumulative)", "uL", [
        charts.Series("programmed", "#7f8c8d", tl.programmed, dash="5 3"),
        charts.Series("delivered", "#1f618d", tl.delivered)], marks, tz)
    rate = charts.Chart("Programmed rate", "uL/h", [charts.Series("rate", "#d35400", tl.rate, step=True)], marks, tz)
    reservoir = charts.Chart("Reservoir", "mL", [charts.Series("reservoir", "#2471a3", tl.reservoir)],
                             [m for m in marks if m.color in ("#2471a3", "#c0392b")], tz)
    pts = [(s["t"], s["pressure_pa"] / 1000.0) for s in samples if isinstance(s.get("pressure_pa"), int)]
    smarks = [m for m in marks if samples and m.t >= samples[0]["t"]]
    pressure = charts.Chart("Line pressure (live, since this page's server started)", "kPa",
                            [charts.Series("pressure", "#884ea0", pts)], smarks, tz)
    return {"delivery": charts.svg(delivery), "rate": charts.svg(rate), "reservoir": charts.svg(reservoir),
            "pressure": charts.svg(pressure)}
