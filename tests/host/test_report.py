"""pumpctl report and logs --plot/--follow: the timeline read from the event log (real dates, programmed
vs delivered, reservoir, marks), the one-page report in HTML/PDF/PNG, events followed as they happen."""

import datetime

import pytest
from test_cli_therapy import board, pc, programmed  # noqa: F401  (fixture)

from itpump import eventlog as ev
from pumpctl import PumpctlError, logs, report, timeline

T0 = 1_780_000_000  # 2026-05-28, a fixed wall clock (the board's, after time sync)
W0 = T0 - ev.WALL_EPOCH_UNIX


def rec(seq, h, code, *fields):
    r = (seq, int(h * 3600_000) % (1 << 30), W0 + int(h * 3600), code, ev.pack_data(code, fields))
    return logs.record_dict(r)


def two_days():
    """Refill, morphine at 20 uL/h, a bolus, an occlusion (delivery stops 2 h), a change to baclofen."""
    rs = [rec(1, 0, ev.REFILL, 20_000_000, 0), rec(2, 0, ev.THERAPY, 20_000, 1)]
    delivered, seq = 0, 3
    for h in range(1, 49):
        delivered += 0 if h in (10, 11) else (20_000 if h <= 30 else 10_000)
        if h == 5:
            rs.append(rec(seq, 4.5, ev.BOLUS_GIVEN, 50_000))
            delivered += 50_000
            seq += 1
        if h == 10:
            rs.append(rec(seq, 9.2, ev.ALARM_RAISED, 0))
            rs.append(rec(seq + 1, 9.4, ev.ALARM_ACKED, 0))
            seq += 2
        if h == 30:
            rs.append(rec(seq, 29.5, ev.REFILL, 18_000_000, 19_000_000))
            rs.append(rec(seq + 1, 29.6, ev.THERAPY, 10_000, 2))
            seq += 2
            delivered = 0
        rs.append(rec(seq, h, ev.DELIVERY, delivered, 20_000 if h < 30 else 10_000))
        seq += 1
    return rs


def test_timeline_has_real_dates_programmed_vs_delivered_reservoir_and_marks():
    tl = timeline.build(two_days(), {1: "morphine", 2: "baclofen"})
    assert tl.dated and tl.times[0] == T0
    assert tl.alarms == [(T0 + 9.2 * 3600, "OCCLUSION")]
    assert tl.changes == [(T0, "rx #1 morphine"), (T0 + 29.6 * 3600, "rx #2 baclofen")]
    assert [v for _, v in tl.refills] == [20.0, 18.0]
    at9 = dict(tl.delivered)[T0 + 9 * 3600]
    assert at9 == pytest.approx(9 * 20 + 50)  # 9 h at 20 uL/h and the 50 uL bolus
    prog = dict(tl.programmed)
    assert prog[T0 + 12 * 3600] == pytest.approx(12 * 20 + 50)  # the programme ran on through the occlusion
    assert dict(tl.delivered)[T0 + 12 * 3600] == pytest.approx(10 * 20 + 50)  # 40 uL missed
    assert dict(tl.reservoir)[T0 + 12 * 3600] == pytest.approx(20 - 0.25)
    days = timeline.per_day(tl, datetime.UTC)
    assert [d for d, _, _ in days][0] == "2026-05-28" and len(days) == 3


def test_plot_png_with_dates_and_marks(tmp_path):
    png = tmp_path / "plot.png"
    drawn = logs.plot(two_days(), png, drugs_by_rx={1: "morphine", 2: "baclofen"})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    assert drawn["alarms"] == 1 and drawn["refills"] == 2 and drawn["changes"] == 2 and drawn["dated"]
    assert drawn["reservoir_points"] > 40


def test_report_html_pdf_png(tmp_path):
    st = {"device_id": "e6614c311b7d", "board": "sim", "fw": "0.1.0", "time_source": "host",
          "reservoir_nl": 17_500_000, "reservoir_drug": "baclofen", "reservoir_conc_ug_per_ml": 2000,
          "therapy": {"day_volume_nl": 240_000}}
    rx = {"drug": "baclofen", "conc_ug_per_ml": 2000, "catheter_volume_nl": 200_000, "mode": "continuous",
          "dose_ng_per_day": 480_000}
    now = datetime.datetime.fromtimestamp(T0 + 48 * 3600, datetime.UTC)
    rep = report.build(st, {"rx": rx, "rx_id": 2}, two_days(), {1: "morphine", 2: "baclofen"}, now=now)
    t = report.html_text(rep)
    for s in ("e6614c311b7d", "baclofen", "2 mg/mL", "480 ug/day", "2026-05-28", "OCCLUSION", "raised",
              "acked", "refill", "next refill (empty by)", "2026-08-09", "<svg", "17.500 mL"):
        assert s in t, s
    assert 'src="http' not in t and 'href="http' not in t and "@import" not in t  # nothing to download
    for suffix, magic in ((".pdf", b"%PDF"), (".png", b"\x89PNG")):
        out = report.write(rep, tmp_path / f"report{suffix}")
        assert out.read_bytes()[:4] == magic[:4]
    assert "OCCLUSION" in report.write(rep, tmp_path / "r.html").read_text()
    with pytest.raises(PumpctlError, match="choose .html, .pdf or .png"):
        report.write(rep, tmp_path / "r.docx")


def test_follow_prints_new_events_until_ctrl_c(board, capsys, monkeypatch):  # noqa: F811
    programmed(board, capsys)
    rc, out, err = pc(capsys, "logs", "--format", "csv")
    assert rc == 0
    calls = {"n": 0}
    real = board.readline

    def readline(timeout_s):
        calls["n"] += 1
        if calls["n"] == 3:
            board.app.journal.event(ev.ALARM_RAISED, 0)  # something happens on the pump
        if calls["n"] > 60:
            raise KeyboardInterrupt
        return real(timeout_s)

    monkeypatch.setattr(board, "readline", readline)
    rc, out2, err = pc(capsys, "logs", "--format", "csv", "--follow", "--interval", "0.001")
    assert rc == 0 and "stopped following" in err
    assert out2.startswith(out)  # the log so far, then what happened while following
    new = out2[len(out):].splitlines()
    assert len(new) == 1 and "alarm_raised" in new[0] and "OCCLUSION" in new[0]  # no header again
