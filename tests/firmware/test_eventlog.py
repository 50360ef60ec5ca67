# Event log: framing, CRC, paging, rotation, torn tails, corrupt records, resync.
import os

import pytest
import scratch

from fakes import FakeClock, raises
from itpump import eventlog as ev

pytestmark = pytest.mark.micropython


def _written(d, c, code, n):
    """A log in d that appended n records of code (data 0..n-1) and closed: the path of its one segment."""
    log = ev.EventLog(d, c)
    for i in range(n):
        log.append(code, i)
    log.close()
    (name,) = os.listdir(d)
    return d + "/" + name


def _scan(data):
    return list(ev.scan_bytes(data))


def test_encode_decode_round_trip():
    data = ev.pack_data(ev.REFILL, (20000000, 19500000))
    raw = ev.encode(42, (1 << 30) - 1, 123456, ev.REFILL, data)
    assert len(raw) == ev.HDR_LEN + 8 + ev.CRC_LEN
    items = _scan(raw)
    assert items == [(ev.REC, 0, (42, (1 << 30) - 1, 123456, ev.REFILL, data))]
    assert ev.fields(ev.REFILL, data) == {"volume_nl": 20000000, "expected_nl": 19500000}
    assert ev.code_name(ev.REFILL) == "refill"
    assert ev.code_name(200) == "code_200"
    assert ev.fields(200, b"\x01\x02") == {"data": "0102"}


def test_every_code_has_a_name_and_packs():
    names = set()
    for code in ev.CODES:
        name, fmt, flds = ev.CODES[code]
        assert name not in names
        names.add(name)
        v = "bolus:LOCKOUT" if fmt == "s" else 1  # text records carry one ASCII string
        data = ev.pack_data(code, tuple(v for _ in flds))
        assert len(data) <= ev.MAX_DATA
        assert ev.fields(code, data) == dict((f, v) for f in flds)
    assert ev.fields(ev.CHANGE_REFUSED, b"\xff\xfe") == {"data": "fffe"}  # not text: shown as hex
    assert len(ev.pack_data(ev.CHANGE_REFUSED, ("x" * 100,))) == ev.MAX_DATA


def test_bad_event_arguments_are_refused():
    raises(ValueError, ev.pack_data, 250, ())
    e = raises(ValueError, ev.pack_data, ev.REFILL, (1,))
    assert "refill" in str(e)
    raises(ValueError, ev.encode, 1, 0, 0, ev.BOOT, b"x" * (ev.MAX_DATA + 1))


def test_every_single_byte_flip_is_detected():
    raw = ev.encode(7, 1000, 0, ev.BOLUS_GIVEN, ev.pack_data(ev.BOLUS_GIVEN, (50000,)))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x04
        items = _scan(bytes(bad))
        assert [it for it in items if it[0] == ev.REC] == []
        assert items[-1][0] == ev.TAIL


def test_torn_record_at_every_length_is_skipped():
    recs = [ev.encode(i, i * 100, 0, ev.ALARM_RAISED, bytes([i])) for i in range(1, 4)]
    good = recs[0] + recs[1]
    for cut in range(1, len(recs[2])):
        items = _scan(good + recs[2][:cut])
        assert [it[2][0] for it in items if it[0] == ev.REC] == [1, 2]
        assert items[-1] == (ev.TAIL, len(good), cut)


def test_corrupt_middle_record_is_reported_and_reading_resyncs():
    recs = [ev.encode(i, i, 0, ev.BOLUS_GIVEN, ev.pack_data(ev.BOLUS_GIVEN, (i,))) for i in range(1, 7)]
    raw = bytearray(b"".join(recs))
    at = 2 * len(recs[0])
    raw[at + 5] ^= 0xFF  # inside record 3
    items = _scan(bytes(raw))
    assert [it[2][0] for it in items if it[0] == ev.REC] == [1, 2, 4, 5, 6]
    bad = [it for it in items if it[0] == ev.BAD]
    assert bad == [(ev.BAD, at, len(recs[0]))]
    text = ev.describe(ev.BAD, at, len(recs[0]), 2, 2)
    assert "record #3" in text and "after seq 2" in text and "byte %d" % at in text


def test_garbage_with_false_magic_bytes_resyncs():
    r1 = ev.encode(1, 0, 0, ev.BOOT, ev.pack_data(ev.BOOT, (0, 1)))
    r2 = ev.encode(2, 0, 0, ev.BOOT, ev.pack_data(ev.BOOT, (1, 2)))
    junk = bytes([ev.MAGIC, 4, 1, ev.MAGIC, 40, ev.MAGIC]) + b"\x00" * 60
    items = _scan(r1 + junk + r2)
    assert [it[2][0] for it in items if it[0] == ev.REC] == [1, 2]
    assert [it for it in items if it[0] == ev.BAD] == [(ev.BAD, len(r1), len(junk))]


def test_scan_of_large_input_uses_bounded_buffer():
    recs = b"".join(ev.encode(i, i, 0, ev.DELIVERY, ev.pack_data(ev.DELIVERY, (i * 10, 20000)))
                    for i in range(1, 501))
    seqs = [it[2][0] for it in _scan(recs) if it[0] == ev.REC]
    assert seqs == list(range(1, 501))


@scratch.in_dir("evlog")
def test_append_read_paging_and_reopen(d):
    c = FakeClock()
    log = ev.EventLog(d, c)
    for i in range(25):
        c.advance(1000)
        assert log.append(ev.BOLUS_GIVEN, 1000 + i) == i + 1
    recs, problems = log.read(0, 10)
    assert problems == [] and [r[0] for r in recs] == list(range(1, 11))
    assert recs[0][1] == c.ticks_add(FakeClock().now, 1000)  # ticks of the first append (wrapped)
    recs, _ = log.read(10, 10)
    assert [r[0] for r in recs] == list(range(11, 21))
    assert ev.fields(recs[0][3], recs[0][4]) == {"volume_nl": 1010}
    assert log.read(25, 10) == ([], [])
    assert log.read(0, 0) == ([], [])
    log.close()
    log2 = ev.EventLog(d, c)
    assert log2.problems == [] and log2.seq == 25
    assert log2.append(ev.ALARM_RAISED, 3) == 26
    recs, _ = log2.read(24, 100)
    assert [r[0] for r in recs] == [25, 26]
    log2.close()


@scratch.in_dir("evlog")
def test_rotation_drops_oldest_segment_and_says_so(d):
    c = FakeClock()
    rec_len = ev.HDR_LEN + 4 + ev.CRC_LEN
    log = ev.EventLog(d, c, seg_bytes=10 * rec_len, max_segs=3)
    for i in range(100):
        log.append(ev.BOLUS_GIVEN, i)
    names = sorted(os.listdir(d))
    assert len(names) == 3
    assert all(os.stat(d + "/" + n)[6] <= 10 * rec_len for n in names)
    recs, problems = log.read(0, 1000)
    assert problems == []
    seqs = [r[0] for r in recs]
    assert seqs == list(range(seqs[0], log.seq + 1))  # contiguous, nothing lost inside
    assert seqs[0] == log.first_seq() and seqs[0] > 1
    drops = [ev.fields(r[3], r[4]) for r in recs if r[3] == ev.LOG_DROPPED]
    assert drops
    last = drops[-1]
    assert last["last_seq"] == seqs[0] - 1  # the newest drop ends just before what is kept
    # paging from a seq inside a dropped range starts at the oldest kept record
    recs, _ = log.read(1, 3)
    assert recs[0][0] == seqs[0]
    log.close()


@scratch.in_dir("evlog")
def test_torn_tail_after_power_cut_is_skipped_and_logged(d):
    c = FakeClock()
    seg = _written(d, c, ev.ALARM_RAISED, 5)
    torn = ev.encode(6, 0, 0, ev.ALARM_RAISED, b"\x05")[:9]
    scratch.write(seg, torn, "ab")
    log2 = ev.EventLog(d, c)
    assert len(log2.problems) == 1 and "record #6" in log2.problems[0] and "tail" in log2.problems[0]
    assert log2.seq == 6  # LOG_DAMAGED took seq 6 in a new segment
    log2.append(ev.ALARM_CLEARED, 1)
    recs, problems = log2.read(0, 100)
    assert [r[0] for r in recs] == [1, 2, 3, 4, 5, 6, 7]
    assert recs[5][3] == ev.LOG_DAMAGED and ev.fields(recs[5][3], recs[5][4])["bytes_skipped"] == 9
    assert len(problems) == 1 and "record #6 (after seq 5)" in problems[0]
    log2.close()


@scratch.in_dir("evlog")
def test_corrupt_record_in_segment_read_continues(d):
    c = FakeClock()
    seg = _written(d, c, ev.BOLUS_GIVEN, 8)
    raw = bytearray(scratch.read(seg))
    raw[3 * 23 + 10] ^= 0x80  # record #4
    scratch.write(seg, raw)
    log2 = ev.EventLog(d, c)  # newest segment damaged: a new one is started
    recs, problems = log2.read(0, 100)
    assert [r[0] for r in recs] == [1, 2, 3, 5, 6, 7, 8, 9]
    assert "record #4 (after seq 3)" in problems[0] and "corrupt" in problems[0]
    log2.close()


@scratch.in_dir("evlog")
def test_garbage_only_newest_segment_is_replaced(d):
    c = FakeClock()
    log = ev.EventLog(d, c)
    log.append(ev.BOOT, 0, 1)
    log.close()
    scratch.write(d + "/" + ev.seg_name(2), b"\x00\x11\x22")
    log2 = ev.EventLog(d, c)
    assert log2.seq == 2 and len(log2.problems) == 1
    recs, problems = log2.read(0, 10)
    assert [(r[0], r[3]) for r in recs] == [(1, ev.BOOT), (2, ev.LOG_DAMAGED)]
    assert problems == []
    log2.close()


@scratch.in_dir("evlog")
def test_wall_clock_zero_until_set_then_counts_across_wrap(d):
    c = FakeClock()
    w = ev.WallClock(c)
    log = ev.EventLog(d, c, wall=w)
    log.append(ev.BOOT, 0, 1)
    c.advance(5000)
    assert w.set(200000000) == 0
    log.append(ev.TIME_SET, 0)
    c.advance(2500)  # crosses the tick wrap
    log.append(ev.ALARM_RAISED, 1)
    recs, _ = log.read(0, 10)
    assert [r[2] for r in recs] == [0, 200000000, 200000002]
    assert w.set(300000000) == 200000002
    log.close()


@scratch.in_dir("evlog")
def test_tiny_budgets_are_refused(d):
    raises(ValueError, ev.EventLog, d, FakeClock(), None, 60, 3)
    raises(ValueError, ev.EventLog, d, FakeClock(), None, 4096, 1)
