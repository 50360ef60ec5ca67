"""Host log tools: decode with the firmware's format, export, damaged input, plot."""

import csv
import io
import json

import pytest

from fakes import FakeClock
from itpump import eventlog as ev
from pumpctl import PumpctlError, logs


def _raw(n=6):
    recs = [ev.encode(1, 100, 0, ev.BOOT, ev.pack_data(ev.BOOT, (0, 1)))]
    recs += [ev.encode(i, 100 + i * 1000, 200000000 + i, ev.BOLUS_GIVEN, ev.pack_data(ev.BOLUS_GIVEN, (i * 1000,)))
             for i in range(2, n + 1)]
    return recs


def test_uses_the_firmware_module_not_a_copy():
    import itpump.eventlog

    assert logs.eventlog is itpump.eventlog


def test_decode_and_export_all_formats():
    d = logs.decode(b"".join(_raw()))
    assert d.problems == []
    assert [r["seq"] for r in d.records] == [1, 2, 3, 4, 5, 6]
    r = d.records[1]
    assert r["event"] == "bolus_given" and r["fields"] == {"volume_nl": 2000}
    assert r["time"] == "2026-05-03T19:33:22Z"  # 2020-01-01 + 200000002 s
    assert d.records[0]["time"] == ""  # no wall time set yet

    js = json.loads(logs.export(d.records, "json"))
    assert js[2]["fields"]["volume_nl"] == 3000 and js[2]["event"] == "bolus_given"
    rows = list(csv.reader(io.StringIO(logs.export(d.records, "csv"))))
    assert rows[0] == ["seq", "time", "ticks_ms", "event", "details"]
    assert rows[1] == ["1", "", "100", "boot", "reset_cause=PWRON boot_count=1"]  # value tables by name
    assert len(rows) == 7
    table = logs.export(d.records, "table").splitlines()
    assert table[0].split() == ["seq", "time", "ticks_ms", "event", "details"]
    assert "volume_nl=6000" in table[-1]
    with pytest.raises(PumpctlError, match="unknown export format 'xml'"):
        logs.export(d.records, "xml")


def test_corrupt_record_is_named_and_the_rest_exported():
    recs = _raw()
    raw = bytearray(b"".join(recs))
    at = sum(len(r) for r in recs[:2])
    raw[at + 6] ^= 0x40  # record #3
    d = logs.decode(bytes(raw), "dump.bin")
    assert [r["seq"] for r in d.records] == [1, 2, 4, 5, 6]
    assert d.problems == [f"dump.bin: record #3 (after seq 2) at byte {at}: corrupt data, {len(recs[2])} bytes skipped"]
    assert len(json.loads(logs.export(d.records, "json"))) == 5


def test_truncated_input_is_named():
    raw = b"".join(_raw())[:-5]
    d = logs.decode(raw)
    assert [r["seq"] for r in d.records] == [1, 2, 3, 4, 5]
    assert len(d.problems) == 1 and "record #6 (after seq 5)" in d.problems[0] and "tail" in d.problems[0]


def test_load_directory_of_rotated_segments(tmp_path):
    c = FakeClock()
    log = ev.EventLog(str(tmp_path), c, seg_bytes=200, max_segs=3)
    for i in range(40):
        c.advance(60000)
        log.append(ev.DELIVERY, i * 500, 30000)
    log.close()
    d = logs.load(tmp_path)
    seqs = [r["seq"] for r in d.records]
    assert d.problems == [] and seqs == list(range(seqs[0], log.seq + 1)) and seqs[0] > 1
    assert any(r["event"] == "log_dropped" for r in d.records)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(PumpctlError, match="no such file"):
        logs.load(tmp_path / "missing")
    with pytest.raises(PumpctlError, match="no event log segments"):
        logs.load(tmp_path)


def test_timeline_unwraps_ticks_and_prefers_wall():
    mk = logs.record_dict
    recs = [mk((1, (1 << 30) - 500, 0, ev.BOOT, ev.pack_data(ev.BOOT, (0, 1)))),
            mk((2, 1500, 0, ev.ALARM_RAISED, b"\x01")),  # across the wrap: +2 s
            mk((3, 3500, 1000, ev.TIME_SET, ev.pack_data(ev.TIME_SET, (0,)))),
            mk((4, 9999, 1010, ev.ALARM_CLEARED, b"\x01")),  # wall says +10 s
            mk((5, 10, 0, ev.BOOT, ev.pack_data(ev.BOOT, (1, 2))))]  # reboot: ticks restart
    assert logs.timeline_s(recs) == [0.0, 2.0, 4.0, 14.0, 14.0]


def test_plot_draws_volume_rate_boluses_and_alarms(tmp_path):
    c = FakeClock()
    log = ev.EventLog(str(tmp_path / "log"), c)
    log.append(ev.BOOT, 0, 1)
    log.append(ev.THERAPY, 20000, 1)
    delivered = 0
    for h in range(1, 25):
        c.advance(3600000)
        delivered += 20000
        if h == 5:
            log.append(ev.BOLUS_GIVEN, 50000)
            delivered += 50000
        if h == 6:
            log.append(ev.BOLUS_REFUSED, 50000, 0)
        if h == 9:
            log.append(ev.ALARM_RAISED, 3)
        if h == 12:
            log.append(ev.REFILL, 20000000, 19500000)
            delivered = 0
        log.append(ev.DELIVERY, delivered, 20000)
    log.close()
    d = logs.load(tmp_path / "log")
    png = tmp_path / "plot.png"
    drawn = logs.plot(d.records, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    assert drawn == {"volume_points": 25, "rate_points": 25, "boluses": 1, "refused": 1, "alarms": 1, "refills": 1,
                     "changes": 1, "reservoir_points": 14, "dated": False}
    with pytest.raises(PumpctlError, match="no records"):
        logs.plot([], tmp_path / "empty.png")


def test_crash_resets_and_booked_reserve_decode_by_name():
    raw = ev.encode(1, 100, 0, ev.BOOT, ev.pack_data(ev.BOOT, (ev.reset_cause_index("CRASH"), 3)))
    raw += ev.encode(2, 101, 0, ev.RESERVE_BOOKED, ev.pack_data(ev.RESERVE_BOOKED, (695, 2085)))
    d = logs.decode(raw)
    assert d.records[0]["fields"] == {"reset_cause": "CRASH", "boot_count": 3}
    assert d.records[1]["event"] == "reserve_booked"
    assert d.records[1]["fields"] == {"volume_nl": 695, "total_nl": 2085}
