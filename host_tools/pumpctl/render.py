"""What pumpctl shows a person: a reply of the board as text rows and tables, in clinical units
(units.py). Commands do the work and hand their result here; --json prints the result itself."""

from __future__ import annotations

import datetime

from . import logs as logsmod
from . import units


def _conc(ug_per_ml) -> str:
    return units.fmt_conc(ug_per_ml) if isinstance(ug_per_ml, int) else "-"


def _mass(ng) -> str:
    return units.fmt_mass(ng) if isinstance(ng, int) else "-"


def rotor_text(rot: dict) -> str:
    """The rotor index line of `pumpctl status`. Until the first index edge (after boot or a stall) the
    flow within a roller pass is not compensated: short windows (31 min) are off by up to the head's
    pulsation, for up to one pass (3.8 h at 0.1 mL/day); a prime crosses edges at once (docs/hardware.md)."""
    if not rot.get("known"):
        return ("phase NOT KNOWN yet: short-window accuracy reduced until the first index edge "
                "(up to one roller pass; `pumpctl bolus --prime` finds it)")
    txt = f"phase known, {rot.get('edges', 0)} index edges, {rot.get('gaps_known', 0)} magnet gaps learnt"
    owed = rot.get("owed_pl") or 0
    if owed:
        txt += f", {units.fmt_nl_floor(owed)} re-priced still to settle"
    return txt


def therapy_rows(st: dict) -> list[tuple[str, str]]:
    """The therapy lines of `pumpctl status` from a status reply. Measured volumes by
    units.fmt_volume_floor (toward zero, never zero when not); the programmed daily volume exactly, as
    `pumpctl therapy` shows it (500 ug at 2.083 uL/h is 49.992 uL/day, not "49.9")."""
    vol = units.fmt_volume_floor
    rows: list[tuple[str, str]] = []
    th = st.get("therapy")
    if "therapy" in st:
        if th is None:
            rows.append(("therapy", "not programmed"))
        else:
            rows.append(("drug", f"{th.get('drug')} {_conc(th.get('conc_ug_per_ml'))}"))
            state = "suspended" if th.get("suspended") else ("running" if st.get("running") else "stopped")
            rows.append(("mode", f"{th.get('mode')} ({state}), prescription #{th.get('rx_id')}"))
            day = units.fmt_volume_per_day(th.get("day_volume_nl"))
            rows.append(("daily dose", f"{_mass(th.get('day_dose_ng'))} = {day}"))
            if th.get("bolus"):
                rows.append(("bolus", f"{th['bolus']} running, {vol(th.get('bolus_left_nl'))} left"))
            if th.get("bridge_left_nl"):
                rows.append(("bridge", f"{vol(th['bridge_left_nl'])} of old fluid left in the line"))
    if "rate_nl_per_h" in st:
        rows.append(("rate now", units.fmt_rate(st["rate_nl_per_h"])))
    nxt = st.get("next_step")
    if nxt:
        what = (units.fmt_rate(nxt["rate_nl_per_h"]) if "rate_nl_per_h" in nxt
                else f"bolus {units.fmt_volume(nxt['bolus_nl'])}")
        rows.append(("next step", f"{what} at {units.fmt_time_of_day(nxt['at_min'])} (in {nxt['in_min']} min)"))
    if "delivered_today_nl" in st:
        rows.append(("delivered", f"{vol(st['delivered_today_nl'])} today, {vol(st.get('delivered_total_nl'))} total"))
    booked = st.get("unconfirmed_nl")
    if isinstance(booked, dict) and booked.get("total"):  # the reserve rule after resets: counted, not pulsed
        rows.append(("booked at resets", f"{vol(booked.get('boot'))} this boot, {vol(booked['total'])} in all, "
                                         "as delivered without confirmed pulses"))
    if "reservoir_nl" in st:
        drug = st.get("reservoir_drug")
        r = vol(st["reservoir_nl"]) + (f" of {drug} {_conc(st.get('reservoir_conc_ug_per_ml'))}" if drug else "")
        dte = st.get("days_to_empty", -1)
        if isinstance(dte, int) and dte >= 0:
            empty = datetime.date.today() + datetime.timedelta(days=dte)
            r += f", {dte} days to empty: refill by {empty.isoformat()}"
        rows.append(("reservoir", r))
    rot = (st.get("line") or {}).get("rotor")
    if isinstance(rot, dict):
        rows.append(("rotor", rotor_text(rot)))
    if "alarms" in st:
        rows.append(("alarms", ", ".join(st["alarms"]) or "none"))
    if "halt" in st:
        rows.append(("halted by", ", ".join(st["halt"]) or "-"))
    b = st.get("battery", st.get("battery_mv"))
    if isinstance(b, dict) and b.get("fault"):  # an implausible reading: no voltage to show
        rows.append(("battery", f"{b.get('state', '?')}: sensor fault (reads {b.get('reading_mv', '?')} mV)"))
    elif isinstance(b, dict) and b.get("state") == "UNKNOWN":  # after boot, before a plausible reading
        rows.append(("battery", "UNKNOWN: no reading yet"))
    elif isinstance(b, dict):  # power.py's monitor: state, average
        mv = b.get("avg_mv", b.get("mv"))
        rows.append(("battery", f"{b.get('state', '?')}" + (f", {mv} mV" if mv is not None else "")))
    elif b is not None:
        rows.append(("battery", f"{b} mV" if isinstance(b, int) else str(b)))
    if "keys" in st:
        rows.append(("keys", str(st["keys"]) + (" (changes locked out)" if st.get("auth_locked") else "")))
    if st.get("time_source"):
        rows.append(("clock", st["time_source"] + (f", {logsmod.wall_iso(st['wall_s'])}" if st.get("wall_s") else "")))
    return rows


def uptime_text(ms: int) -> str:
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def status_table(st: dict, port: str):
    """`pumpctl status`: the board's identity and heap, then its therapy rows."""
    from rich.table import Table

    t = Table(title=f"itpump on {port}", show_header=False)
    for key, label, fmt in (
        ("board", "board", str), ("fw", "firmware", str), ("uptime_ms", "uptime", uptime_text),
        ("reset_cause", "reset cause", str), ("mem_free", "free heap", lambda v: f"{v:,} bytes"),
        ("mem_alloc", "used heap", lambda v: f"{v:,} bytes"),
    ):
        if key in st:
            t.add_row(label, fmt(st[key]))
    rows = therapy_rows(st)
    if rows:
        t.add_section()
        for label, value in rows:
            t.add_row(label, value)
    return t


def _show(v) -> str:
    return "-" if v is None else str(v)


def kv_table(title: str, rows: list[tuple[str, str]]):
    from rich.table import Table

    t = Table(title=title, show_header=False)
    for k, v in rows:
        t.add_row(k, v)
    return t


def therapy_summary_rows(rep: dict) -> list[tuple[str, str]]:
    """A `therapy` reply as rows in clinical units (prescription.diff against nothing)."""
    from . import prescription

    if rep.get("rx") is None:
        return [("therapy", "not programmed")]
    rows = [("prescription", f"#{rep.get('rx_id')}")]
    for f, _old, text, _changed in prescription.diff(None, rep["rx"]):
        rows.append((f.lstrip("=").replace("_", " "), _show(text)))
    st = rep.get("status") or {}
    if st:
        rows.append(("state", "suspended" if st.get("suspended") else "active"))
    return rows


def diff_table(rows):
    """prescription.diff's rows: on the device -> new, changed fields in bold."""
    from rich.table import Table

    t = Table(title="prescription: on the device -> new")
    t.add_column("field")
    t.add_column("on the device")
    t.add_column("new")
    for f, old, new, changed in rows:
        t.add_row(f, _show(old), _show(new), style="bold yellow" if changed else None)
    return t


def alarms_table(active: list[dict]):
    from rich.table import Table

    t = Table(title="active alarms")
    for c in ("code", "priority", "condition", "acked", "escalated", "since (s uptime)"):
        t.add_column(c)
    for x in active:
        t.add_row(x["code"], x["priority"], "present" if x.get("present") else "gone (latched)",
                  "yes" if x.get("acked") else "no", "yes" if x.get("escalated") else "no", str(x.get("since_s")))
    return t


def recent_alarms_table(recent: list[dict]):
    from rich.table import Table

    r = Table(title="recent alarm events (newest first)")
    for c in ("code", "event", "t (s uptime)"):
        r.add_column(c)
    for x in recent:
        r.add_row(x["code"], x["event"], str(x["t_s"]))
    return r


def flash_text(summary: dict, port: str) -> str:
    what = {"py": "", "mpy": " as .mpy", "frozen": " (the rest is frozen in the image)"}[summary["mode"]]
    msg = (f"flashed {summary['files']} files ({summary['bytes']:,} bytes){what} to {summary['board']} on {port} "
           f"in {summary['seconds']:.1f} s, verified by SHA-256")
    if summary["skipped"]:
        msg += f"; {summary['skipped']} unchanged"
    removed = summary["removed"]
    if removed:
        msg += f"; removed stale {', '.join(removed) if len(removed) <= 3 else f'{len(removed)} files'}"
    return msg


def bolus_text(r: dict) -> str:
    vol = units.fmt_volume_floor(r.get("volume_nl"))
    return f"{r.get('kind')} bolus started: {vol} at {units.fmt_rate(r.get('rate_nl_per_h'))}"


def refill_text(args: dict, r: dict) -> str:
    msg = (f"refilled with {args['drug']} {units.fmt_conc(args['conc_ug_per_ml'])}: reservoir "
           f"{units.fmt_volume_floor(r.get('volume_nl'))}")
    if r.get("bridge_nl"):
        msg += f"; bridging {units.fmt_volume_floor(r['bridge_nl'])} of old fluid in the line"
    return msg


def refill_warning(r: dict) -> str:
    v = {k: units.fmt_volume_floor(r.get(k)) for k in ("removed_nl", "expected_nl", "mismatch_nl", "tolerance_nl")}
    return (f"warning: removed {v['removed_nl']} but the pump expected {v['expected_nl']} (off by {v['mismatch_nl']}, "
            f"tolerance {v['tolerance_nl']}): check for a pocket fill or a leak")


def log_read_text(r: dict, seconds: float, out: str | None, plot: str | None) -> str:
    """`logs`: what was read, and the files written (a plot only when there were records)."""
    return (f"read {len(r['records'])} records ({r['bytes']:,} bytes) in {seconds:.2f} s, {r['pages']} pages"
            + (f"; wrote {out}" if out else "") + (f"; plot {plot}" if plot and r["records"] else ""))


def weighing_text(mass_mg: str, temp_c, nl: int, dens: int, steps: int) -> str:
    return (f"{mass_mg} mg of water at {temp_c} C, density {dens // 10**6}.{dens % 10**6:06d} mg/uL: "
            f"{nl // 1000}.{nl % 1000:03d} uL ({nl} nL, rounded up) over {steps} steps")


def clock_set_text(r: dict, tz_min: int) -> str:
    prev = logsmod.wall_iso(r.get("previous_wall_s", 0)) or "unset"
    return (f"board clock set to {logsmod.wall_iso(r['wall_s'])} (UTC{'+' if tz_min >= 0 else '-'}"
            f"{abs(tz_min) // 60:02d}:{abs(tz_min) % 60:02d}); it was {prev}")


def drugs_table(d):
    """The firmware's drug library (drugs.py) in clinical units."""
    from rich.table import Table

    t = Table(title="drug library (firmware/itpump/drugs.py: what the pump accepts)")
    for c in ("drug", "concentration", "daily dose"):
        t.add_column(c)
    for n in d.names():
        cmin, cmax, dmin, dmax = d.limits(n)
        t.add_row(n, f"{units.fmt_conc(cmin)} to {units.fmt_conc(cmax)}",
                  f"{units.fmt_dose_rate(dmin)} to {units.fmt_dose_rate(dmax)}")
    return t


def device_limits_text(d) -> str:
    return (f"device: basal {units.fmt_volume(d.MIN_BASAL_NL_PER_DAY)}/day to "
            f"{units.fmt_volume(d.MAX_BASAL_NL_PER_DAY)}/day; "
            f"basal + boluses at most {units.fmt_volume(d.MAX_DAILY_NL)}/day; one bolus at most "
            f"{units.fmt_volume(d.MAX_BOLUS_NL)}; total rate at most {units.fmt_rate(d.MAX_RATE_NL_PER_H)}; "
            f"catheter at most {units.fmt_volume(d.MAX_CATHETER_NL)}")


def history_table(rows: list[dict], where):
    from rich.table import Table

    t = Table(title=f"prescriptions sent ({where})")
    for c in ("when", "who", "device", "#", "from", "prescription"):
        t.add_column(c)
    for e in rows:
        t.add_row(str(e.get("at", "?"))[:16].replace("T", " "), e.get("who", "?"), e.get("device_id", "?"),
                  str(e.get("rx_id", "?")), e.get("source", "?"), describe(e.get("rx") or {}))
    return t


def describe(rx: dict) -> str:
    """One line: drug, concentration, mode and dose in clinical units."""
    import json

    from . import prescription

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
