"""What pumpctl shows a person: a reply of the board as text rows and tables, in clinical units
(units.py). Commands do the work and hand their result here; --json prints the result itself."""

from __future__ import annotations

import datetime

from . import logs as logsmod
from . import units as U


def _conc(ug_per_ml) -> str:
    return U.fmt_conc(ug_per_ml) if isinstance(ug_per_ml, int) else "-"


def _mass(ng) -> str:
    return U.fmt_mass(ng) if isinstance(ng, int) else "-"


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
        txt += f", {owed / 1000:+.1f} nL re-priced still to settle"
    return txt


def therapy_rows(st: dict) -> list[tuple[str, str]]:
    """The therapy lines of `pumpctl status` from a status reply. Measured volumes are floored
    (units.fmt_volume_floor): what is left is never shown as more than it is."""
    vol = U.fmt_volume_floor
    rows: list[tuple[str, str]] = []
    th = st.get("therapy")
    if "therapy" in st:
        if th is None:
            rows.append(("therapy", "not programmed"))
        else:
            rows.append(("drug", f"{th.get('drug')} {_conc(th.get('conc_ug_per_ml'))}"))
            state = "suspended" if th.get("suspended") else ("running" if st.get("running") else "stopped")
            rows.append(("mode", f"{th.get('mode')} ({state}), prescription #{th.get('rx_id')}"))
            rows.append(("daily dose", f"{_mass(th.get('day_dose_ng'))} = {vol(th.get('day_volume_nl'))}/day"))
            if th.get("bolus"):
                rows.append(("bolus", f"{th['bolus']} running, {vol(th.get('bolus_left_nl'))} left"))
            if th.get("bridge_left_nl"):
                rows.append(("bridge", f"{vol(th['bridge_left_nl'])} of old fluid left in the line"))
    if "rate_nl_per_h" in st:
        rows.append(("rate now", U.fmt_rate(st["rate_nl_per_h"])))
    nxt = st.get("next_step")
    if nxt:
        what = U.fmt_rate(nxt["rate_nl_per_h"]) if "rate_nl_per_h" in nxt else f"bolus {U.fmt_volume(nxt['bolus_nl'])}"
        rows.append(("next step", f"{what} at {U.fmt_time_of_day(nxt['at_min'])} (in {nxt['in_min']} min)"))
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
