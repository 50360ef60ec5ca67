# Persistent state: generations, CRC, slot choice, corruption, the reserve rule, checkpoint policy.
import os

import pytest
import scratch

from fakes import FakeClock, raises
from itpump import store

pytestmark = pytest.mark.micropython


@scratch.in_dir("store")
def test_fresh_store_loads_nothing(d):
    st, gen, problems = store.Store(d + "/state").load()
    assert st is None and gen == 0 and problems == []


@scratch.in_dir("store")
def test_save_load_round_trip_and_generations(d):
    s = store.Store(d)
    s.load()
    assert s.save({"delivered_nl": 10}) == 1
    assert s.save({"delivered_nl": 20, "rx": {"rate_nl_per_h": 20000}}) == 2
    assert s.save({"delivered_nl": 30}) == 3
    st, gen, problems = store.Store(d).load()  # a fresh boot
    assert st == {"delivered_nl": 30} and gen == 3 and problems == []


@scratch.in_dir("store")
def test_save_never_overwrites_newest_valid_slot(d):
    _saved(d, {"g": 1}, {"g": 2})
    before = {n: scratch.read(d + "/" + n) for n in store.SLOTS}
    winner = [n for n in store.SLOTS if store.decode(before[n])[1] == 2][0]
    s2 = store.Store(d)
    s2.load()
    s2.save({"g": 3})
    assert scratch.read(d + "/" + winner) == before[winner]  # gen 2 untouched
    loser = [n for n in store.SLOTS if n != winner][0]
    assert store.decode(scratch.read(d + "/" + loser)) == ({"g": 3}, 3)


def _saved(d, *docs):
    """A store in d that has saved docs in turn (generations 1, 2, ...)."""
    s = store.Store(d)
    s.load()
    for doc in docs:
        s.save(doc)
    return s


def _newest_slot(d):
    for n in store.SLOTS:
        try:
            if store.decode(scratch.read(d + "/" + n))[1] == 2:
                return n
        except ValueError:
            pass
    raise AssertionError("no gen 2")


@scratch.in_dir("store")
def test_corrupt_newest_copy_falls_back_and_is_reported(d):
    _saved(d, {"v": 1}, {"v": 2})
    name = _newest_slot(d)
    raw = bytearray(scratch.read(d + "/" + name))
    raw[-2] ^= 0x10
    scratch.write(d + "/" + name, raw)
    s2 = store.Store(d)
    st, gen, problems = s2.load()
    assert st == {"v": 1} and gen == 1
    assert len(problems) == 1 and name in problems[0] and "CRC" in problems[0]
    # the next save replaces the corrupt copy, keeping gen 1 as the fallback
    assert s2.save({"v": 3}) == 2
    st, gen, problems = store.Store(d).load()
    assert st == {"v": 3} and gen == 2 and problems == []


@scratch.in_dir("store")
def test_truncated_and_garbage_slots_are_reported(d):
    _saved(d, {"v": 1}, {"v": 2})
    name = _newest_slot(d)
    scratch.write(d + "/" + name, scratch.read(d + "/" + name)[:store.HDR_LEN + 3])
    other = [n for n in store.SLOTS if n != name][0]
    scratch.write(d + "/" + other, b"\xff" * 40)
    st, gen, problems = store.Store(d).load()
    assert st is None and gen == 0
    assert len(problems) == 2
    assert [p for p in problems if name in p and "length" in p]
    assert [p for p in problems if other in p and "magic" in p]


@scratch.in_dir("store")
def test_interrupted_save_temp_is_discarded(d):
    _saved(d, {"v": 1})
    scratch.write(d + "/" + store.TMP, store.encode({"v": 99}, 2)[:20])  # cut before rename
    s2 = store.Store(d)
    st, gen, problems = s2.load()
    assert st == {"v": 1} and gen == 1
    assert len(problems) == 1 and "interrupted" in problems[0]
    assert store.TMP not in __import__("os").listdir(d)
    assert s2.save({"v": 2}) == 2


def test_every_single_byte_flip_is_detected():
    raw = store.encode({"delivered_nl": 123456, "rx": {"rate_nl_per_h": 20000}}, 7)
    assert store.decode(raw) == ({"delivered_nl": 123456, "rx": {"rate_nl_per_h": 20000}}, 7)
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        raises(ValueError, store.decode, bytes(bad))


@scratch.in_dir("store")
def test_oversized_document_is_refused_and_changes_nothing(d):
    s = _saved(d, {"v": 1})
    e = raises(ValueError, s.save, {"big": "x" * store.MAX_DOC_BYTES})
    assert "limit" in str(e)
    assert s.generation == 1
    assert store.Store(d).load()[:2] == ({"v": 1}, 1)


def test_reserve_rule_never_under_counts():
    # 20 uL/h over the 2-minute horizon: 667 nL (rounded up), on top of what is delivered
    mark = store.reserve_mark(1000, 20000)
    assert mark == 1000 + 667
    assert store.reserve_mark(0, 20000, 1200000, extra_nl=50000) == 6667 + 50000
    assert store.may_deliver(1000, 667, mark)
    assert not store.may_deliver(1000, 668, mark)
    # after a cut the persisted mark counts as delivered, never the lower confirmed total
    assert store.recovered_delivered_nl({"delivered_nl": 1000, "reserved_nl": mark}) == mark
    assert store.recovered_delivered_nl({"delivered_nl": 9000, "reserved_nl": mark}) == 9000
    assert store.recovered_delivered_nl({}) == 0
    # the mark file's (delivered, reserved) counts too, and never lowers the state's
    assert store.recovered_delivered_nl({"delivered_nl": 1000, "reserved_nl": mark}, (1500, 2300)) == 2300
    assert store.recovered_delivered_nl({"delivered_nl": 1000, "reserved_nl": 2400}, (1500, 2300)) == 2400
    # the fastest rate the guard allows stays a small int on the rp2, even over the damaged-mark bound
    assert store.RESERVE_BOUND_MS == store.CHECKPOINT_MS + store.RESERVE_MS
    assert store.reserve_mark(0, 1490000, store.RESERVE_BOUND_MS) < (1 << 30)


@scratch.in_dir("store")
def test_the_mark_file_moves_in_place_and_counts_only_for_its_generation(d):
    s = _saved(d, {"delivered_nl": 0, "reserved_nl": 667})
    s.save_mark(500, 1167)  # first of the boot: temp + rename
    s.save_mark(900, 1567)  # then in place
    assert not store._exists(d + "/" + store.MARK_TMP)
    s2 = store.Store(d)
    state, gen, problems = s2.load()
    assert gen == 1 and s2.mark == (900, 1567) and not s2.mark_bad and problems == []
    assert store.recovered_delivered_nl(state, s2.mark) == 1567
    s2.save({"delivered_nl": 0, "reserved_nl": 667})  # a refill: the new state voids the old mark
    s3 = store.Store(d)
    state, gen, problems = s3.load()
    assert gen == 2 and s3.mark is None and not s3.mark_bad
    assert store.recovered_delivered_nl(state, s3.mark) == 667
    s3.save_mark(100, 767)
    with open(d + "/" + store.MARK, "r+b") as f:  # a damaged mark: not trusted, reported
        f.seek(9)
        f.write(b"\xff")
    s4 = store.Store(d)
    state, gen, problems = s4.load()
    assert s4.mark is None and s4.mark_bad and problems and "mark: corrupt" in problems[0]
    # a mark ahead of the state (the newest slot lost): bounded, not trusted
    s4.save_mark(1, 2)
    os.remove(d + "/" + store.SLOTS[s4._slot])
    s5 = store.Store(d)
    state, gen, problems = s5.load()
    assert gen == 1 and s5.mark_bad and "ahead" in problems[0]


def test_checkpoint_policy_schedules_and_changes():
    c = FakeClock()  # starts 1 s before the 2**30 tick wrap
    p = store.CheckpointPolicy(c, interval_ms=600000)
    assert not p.due()
    p.progress()
    c.advance(599999)
    assert not p.due()
    c.advance(1)
    assert p.due()  # across the wrap
    p.saved()
    assert not p.due()
    p.changed()
    assert p.due()  # therapy change: at once
    p.saved()
    c.advance(3600000)
    assert not p.due()  # idle: nothing to save, window restarts
    p.progress()
    assert not p.due()
    c.advance(600000)
    assert p.due()


def test_checkpoint_policy_idle_for_a_week_keeps_its_schedule():
    c = FakeClock()
    p = store.CheckpointPolicy(c, interval_ms=600000)
    for _ in range(7 * 24 * 60):  # a tick a minute for 7 days (> half the 2**30 tick period)
        c.advance(60000)
        assert not p.due()
    p.progress()
    c.advance(600000)
    assert p.due()


def test_saves_per_day():
    assert store.saves_per_day() == 144
    assert store.saves_per_day(600000, 20) == 164


@scratch.in_dir("store")
def test_streamed_save_writes_exactly_the_framed_document(d):
    # save() streams the JSON into the file and reads the CRC back: the slot must hold the same bytes
    # encode() frames (which decode() checks), for a document larger than the read-back buffer
    s = store.Store(d)
    s.load()
    doc = {"rx": {"drug": "morphine", "flex": [[i * 60, 1000 + i] for i in range(10)]}, "total_nl": 123456789,
           "guard": {"b": list(range(48))}, "note": "x" * 300}
    gen = s.save(doc)
    with open(d + "/" + store.SLOTS[s._slot], "rb") as f:
        raw = f.read()
    assert raw == store.encode(doc, gen) and len(raw) > 64 * 10
    assert store.decode(raw) == (doc, gen)
    assert s.load()[0] == doc
