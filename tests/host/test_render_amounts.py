"""Amounts as people read them: a volume or mass that is not zero never reads as zero (drug given is
never under-stated as none), a measured volume is never shown as more than it is, and the same rule
holds in every place pumpctl writes one (status, report, web)."""

import datetime
import io
import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from pumpctl import render, report, units
from pumpctl.web import views


def _nl_of(text: str) -> Decimal:
    """The volume a reader takes from fmt_volume_floor's text, in nL ("<0.1 uL": just above 0)."""
    m = re.fullmatch(r"(-?)(<?)(\d+(?:\.\d+)?) (uL|mL)", text)
    assert m, text
    v = Decimal(m[3]) * (1000 if m[4] == "uL" else 1_000_000)
    return -v if m[1] else v


@given(st.integers(min_value=-(10**10), max_value=10**10))
def test_a_volume_reads_never_more_than_it_is_and_never_zero_when_it_is_not(nl):
    text = units.fmt_volume_floor(nl)
    shown = _nl_of(text)
    if nl == 0:
        assert text == "0.0 uL"
        return
    assert "<" in text or shown != 0, (nl, text)  # 71 nL read "0.0 uL"
    step = 1000 if abs(nl) >= 1_000_000 else 100
    assert 0 <= abs(nl) - abs(shown) < step or "<" in text, (nl, text)  # toward zero, within one step


def test_the_volumes_at_the_edges():
    assert [units.fmt_volume_floor(n) for n in (0, 1, 71, 99, 100, 695, 999_999, 1_000_000, 19_999_999)] == [
        "0.0 uL", "<0.1 uL", "<0.1 uL", "<0.1 uL", "0.1 uL", "0.6 uL", "999.9 uL", "1.000 mL", "19.999 mL"]
    assert units.fmt_volume_floor(-150) == "-0.1 uL" and units.fmt_volume_floor(None) == "-"
    assert [units.fmt_nl_floor(p) for p in (0, 40, -40, 230_500, -230_500)] == [
        "0.0 nL", "+<0.1 nL", "-<0.1 nL", "+230.5 nL", "-230.5 nL"]


def _seen(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=120, highlight=False, color_system=None).print(renderable)
    return out.getvalue()


def test_status_shows_a_small_booking_at_a_reset_as_less_than_a_tenth_not_zero():
    """Reproduced on the virtual board: 0.5 mg/day of morphine, a restart: `unconfirmed_nl` boot 71 and
    `pumpctl status` said "booked at resets  0.0 uL this boot"."""
    status = {"fw": "0.1.0", "board": "sim", "delivered_today_nl": 40, "delivered_total_nl": 40,
          "unconfirmed_nl": {"boot": 71, "total": 651}, "reservoir_nl": 19_999_960,
          "line": {"rotor": {"known": True, "edges": 3, "gaps_known": 1, "owed_pl": 40}}}
    seen = _seen(render.status_table(status, "/dev/pts/0"))
    assert "<0.1 uL this boot, 0.6 uL in all" in seen
    assert "<0.1 uL today, <0.1 uL total" in seen
    assert "19.999 mL" in seen and "+<0.1 nL re-priced" in seen
    assert not re.search(r"\b0\.0 (uL|nL)", seen), seen


def test_report_and_web_say_a_small_delivery_is_not_none():
    """The report's per-day table wrote f"{uL:.1f} uL": 40 nL delivered in a day read "0.0 uL"."""
    from test_report import T0, rec

    from itpump import eventlog as ev

    rs = [rec(1, 0, ev.REFILL, 20_000_000, 0), rec(2, 0, ev.THERAPY, 2000, 1), rec(3, 0.02, ev.DELIVERY, 40, 2000)]
    now = datetime.datetime.fromtimestamp(T0 + 3600, datetime.UTC)
    rep = report.build({"device_id": "x", "reservoir_nl": 19_999_960}, {}, rs, now=now)
    assert [r[1] for r in rep.per_day] == ["<0.1 uL"], rep.per_day
    assert "<td>&lt;0.1 uL</td>" in report.html_text(rep)  # as the page shows it
    d = views.dashboard({"therapy": {"drug": "ziconotide", "conc_ug_per_ml": 25, "day_dose_ng": 2400,
                                     "day_volume_nl": 96_000, "rx_id": 1, "mode": "continuous"},
                         "delivered_today_nl": 30, "running": True}, {}, now)
    assert d["delivered_today"] == "<0.1 uL (1 ng)"  # 0.75 ng given: never "0 ng"


def test_status_shows_the_programmed_daily_volume_exactly_and_no_battery_reading_as_none():
    """On the virtual board, 500 ug/day of morphine read "500 ug = 49.9 uL/day" in status and "49.992
    uL/day" in `therapy`; right after boot the battery read "UNKNOWN, 0 mV", as if it were flat."""
    rows = dict(render.therapy_rows({"therapy": {"drug": "morphine", "conc_ug_per_ml": 10_000, "mode": "continuous",
                                                 "rx_id": 2, "day_dose_ng": 500_000, "day_volume_nl": 49_992},
                                     "battery": {"avg_mv": 0, "fault": False, "reading_mv": 0, "state": "UNKNOWN"}}))
    assert rows["daily dose"] == "500 ug = 49.992 uL/day"
    assert rows["battery"] == "UNKNOWN: no reading yet"
