# Power-cut sweep on real littlefs (run with the micropython binary): the pump scenario, power cut at
# the Nth program/erase, then what a fresh mount must find (docs/persistence.md: the power-cut sweep).
#   micropython tests/faults/powercut.py [--step K] [--first N] [--last N] [--quiet]
# Prints one "RESULT {json}" line: cut points tried, failures, committed records lost.
# ruff: noqa: UP031  (MicroPython code: %-formatting)
import json
import sys

import vfs

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here)
sys.path.insert(0, _here + "/../../firmware")
sys.path.insert(0, _here + "/../firmware")
from ramflash import PowerCut, RamFlash, blank  # noqa: E402

from fakes import FakeClock  # noqa: E402
from itpump import eventlog as ev  # noqa: E402
from itpump import store  # noqa: E402

BLOCKS = 64  # 256 KiB: small image, same 4 KiB blocks as the Pico
MNT = "/pc"
SEG_BYTES = 512  # small segments so the scenario rotates the log
MAX_SEGS = 3
CHECKPOINT_MS = 600000
MINUTES = 240


class Oracle:
    """What the scenario knows was committed (calls that returned) and what was in flight."""

    def __init__(self):
        self.gen = 0
        self.docs = {}  # generation -> JSON text saved
        self.inflight_gen = 0
        self.recs = {}  # seq -> (code, data) of appends that returned
        self.last_seq = 0
        self.inflight = None  # (code, data) being appended
        self.actual_nl = {0: 0}  # refill epoch -> volume the motor really delivered
        self.log = None
        self.alive = None  # raises PowerCut once the flash lost power
        self.marks = 0  # mark file writes


def move_mark(o, st, state):
    state["reserved_nl"] = store.reserve_mark(state["delivered_nl"], state["rx"]["rate_nl_per_h"])
    o.marks += 1
    st.save_mark(state["delivered_nl"], state["reserved_nl"])
    o.alive()  # a cut during the write: the old mark or the new one, never a torn one


def save(o, st, state):
    o.inflight_gen = o.gen + 1
    o.docs[o.inflight_gen] = json.dumps(state)
    gen = st.save(state)
    o.alive()  # cut during the save: it was in flight, never returned
    o.gen = gen
    o.inflight_gen = 0


def log(o, lg, code, *vals):
    o.inflight = (code, ev.pack_data(code, vals))
    seq = lg.append(code, *vals)
    o.alive()
    o.recs[seq] = o.inflight
    o.last_seq = seq
    o.inflight = None


def scenario(o, root):
    clock = FakeClock()
    st = store.Store(root + "/state")
    state, gen, problems = st.load()
    o.alive()
    lg = ev.EventLog(root + "/log", clock, seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
    o.log = lg
    o.alive()
    state = {"boot_count": 1, "refills": 0, "fill_nl": 20000000, "delivered_nl": 0, "reserved_nl": 0,
             "rx": {"rate_nl_per_h": 300000, "rx_id": 1}, "auth": {"clinician": 0}, "bolus_nl": 0}
    log(o, lg, ev.BOOT, 0, 1)
    policy = store.CheckpointPolicy(clock, CHECKPOINT_MS)
    state["auth"]["clinician"] = 1
    save(o, st, state)
    policy.saved()
    log(o, lg, ev.THERAPY, 300000, 1)
    ctr = 1
    for m in range(MINUTES):
        clock.advance(60000)
        rate = state["rx"]["rate_nl_per_h"]
        chunk = rate // 60
        if not store.may_deliver(state["delivered_nl"], chunk, state["reserved_nl"]):
            move_mark(o, st, state)  # the mark is on flash before the motor moves
        o.alive()  # a cut before this point: the motor never turned
        o.actual_nl[state["refills"]] += chunk  # motor turns; RAM accounting follows
        state["delivered_nl"] += chunk
        policy.progress()
        if m % 7 == 3:  # patient bolus: every other one refused by the guard
            ctr += 1
            state["auth"]["clinician"] = ctr
            if m % 14 == 3:
                vol = 20000
                state["reserved_nl"] = store.reserve_mark(state["delivered_nl"], rate, extra_nl=vol)
                save(o, st, state)
                policy.saved()
                o.actual_nl[state["refills"]] += vol
                state["delivered_nl"] += vol
                log(o, lg, ev.BOLUS_GIVEN, vol)
            else:
                log(o, lg, ev.BOLUS_REFUSED, 20000, 0)
        if m % 13 == 5:
            log(o, lg, ev.ALARM_RAISED, 4)
            log(o, lg, ev.ALARM_ACKED, 4)
            policy.changed()
        if m % 13 == 9:
            log(o, lg, ev.ALARM_CLEARED, 4)
        if m in (60, 180):
            state["rx"] = {"rate_nl_per_h": 150000 if m == 60 else 450000, "rx_id": state["rx"]["rx_id"] + 1}
            policy.changed()
            log(o, lg, ev.THERAPY, state["rx"]["rate_nl_per_h"], state["rx"]["rx_id"])
        if m == 120:  # refill: new epoch, delivered counts from 0 again
            o.actual_nl[state["refills"] + 1] = 0
            state = dict(state)
            state["refills"] += 1
            state["fill_nl"] = 20000000
            state["delivered_nl"] = 0
            state["reserved_nl"] = store.reserve_mark(0, state["rx"]["rate_nl_per_h"])
            save(o, st, state)
            policy.saved()
            log(o, lg, ev.REFILL, 20000000, 19500000)
        if policy.due():
            save(o, st, state)
            policy.saved()
            log(o, lg, ev.DELIVERY, state["delivered_nl"], state["rx"]["rate_nl_per_h"])
    lg.close()


def _umount():
    try:
        vfs.umount(MNT)
    except OSError:
        pass


def run(base_image, cut_after):
    """Run the scenario with a cut after cut_after writes; returns (dev, oracle, cut happened)."""
    dev = RamFlash(base_image, cut_after)
    o = Oracle()
    o.alive = dev.alive
    vfs.mount(vfs.VfsLfs2(dev), MNT)
    cut = False
    try:
        scenario(o, MNT)
        dev.alive()
    except PowerCut:
        cut = True
        if o.log is not None:
            o.log.close()  # into the dead copy: leaves no open file to a finaliser
    finally:
        _umount()
    return dev, o, cut


def verify(image, o):
    """Mount the frozen image and check it; returns (failures list, committed records lost, overcount)."""
    fails = []
    dev = RamFlash(image)
    try:
        fs = vfs.VfsLfs2(dev)
    except OSError as e:
        return ["mount failed: %s" % e], 0, 0
    vfs.mount(fs, MNT)
    lost = 0
    over = 0
    try:
        st = store.Store(MNT + "/state")
        state, gen, problems = st.load()
        for p in problems:
            if "interrupted save" not in p:
                fails.append("store: " + p)
        if gen not in (o.gen, o.inflight_gen) or (gen == 0 and o.gen):
            fails.append("store: generation %d, committed %d, in flight %d" % (gen, o.gen, o.inflight_gen))
        elif gen and state != json.loads(o.docs[gen]):
            fails.append("store: generation %d content differs from what was saved" % gen)
        if st.mark_bad:
            fails.append("store: mark file damaged")
        actual = o.actual_nl[state["refills"]] if state else 0
        rec = store.recovered_delivered_nl(state, st.mark) if state else 0
        if rec < actual:
            fails.append("delivered under-counted: recovered %d nL, motor delivered %d nL" % (rec, actual))
        over = rec - actual
        if gen and st.save(state) != gen + 1:
            fails.append("store: save after recovery")

        lg = ev.EventLog(MNT + "/log", FakeClock(), seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
        got, problems = lg.read(0, 100000)
        for p in problems:
            fails.append("log: " + p)
        floor = o.log.dropping_upto if o.log is not None else 0
        seen = {}
        prev = 0
        for r in got:
            if r[0] <= prev:
                fails.append("log: seq %d after %d" % (r[0], prev))
            prev = r[0]
            seen[r[0]] = r
        for seq in o.recs:
            r = seen.get(seq)
            if r is None:
                if seq > floor:
                    lost += 1
            elif (r[3], r[4]) != o.recs[seq]:
                fails.append("log: record %d altered" % seq)
        for r in got:
            if r[0] in o.recs:
                continue
            if r[3] in (ev.LOG_DROPPED, ev.LOG_DAMAGED) and r[0] <= o.last_seq + 2:
                continue  # the log's own records
            if r[0] > o.last_seq and o.inflight is not None and (r[3], r[4]) == o.inflight:
                continue  # the append being made when power failed: committed or not, intact
            fails.append("log: record %d (code %d) was never written" % (r[0], r[3]))
        if lost:
            fails.append("log: %d committed records lost" % lost)
        n = lg.seq
        seq = lg.append(ev.BOOT, 1, 2)
        back = lg.read(seq - 1, 1)[0]
        if seq <= n or not back or back[0][0] != seq:
            fails.append("log: append after recovery")
        lg.close()
    except Exception as e:  # anything raised while recovering is itself a failure
        fails.append("recovery raised %r" % e)
    finally:
        _umount()
    return fails, lost, over


# Deliberate defects (--mutate NAME): the sweep must catch each, or it proves nothing.
def _save_in_place(self, state):
    # Over the newest copy, flushed half-written: littlefs commits the torn file. (Plain in-place
    # writes are atomic per close on littlefs and would pass; the temp + rename and the two slots
    # are what keep this safe on any filesystem and against a bad slot.)
    gen = self.generation + 1
    slot = 0 if self._slot < 0 else self._slot
    raw = store.encode(state, gen)
    with open(self.dir + "/" + store.SLOTS[slot], "wb") as f:
        f.write(raw[:store.HDR_LEN])
        f.flush()
        f.write(raw[store.HDR_LEN:])
    self.generation, self._slot = gen, slot
    return gen


def _append_no_flush(self, code, data=b""):  # records kept in RAM, written 4 at a time: not durable
    n = ev.HDR_LEN + len(data) + ev.CRC_LEN
    if self._size + n > self.seg_bytes:
        self._open_new()
    seq = self.seq + 1
    ev.encode_into(self._buf, 0, seq, self.clock.ticks_ms(), 0, code, data)
    held = getattr(self, "_held", None)
    if held is None:
        held = self._held = []
    held.append(bytes(self._mv[:n]))
    if len(held) >= 4:
        with open(self._path(self._segs[-1]), "ab") as f:
            for r in held:
                f.write(r)
        del held[:]
    self.seq = seq
    self._size += n
    return seq


def _recover_without_mark(state, mark=None):  # resume from confirmed steps only, ignoring the mark
    return state.get("delivered_nl", 0)


_recover = store.recovered_delivered_nl


def _recover_without_mark_file(state, mark=None):  # the state's mark only: stale between saves
    return _recover(state)


def _mark_torn(self, delivered_nl, reserved_nl):  # the mark rewritten in two commits
    buf = self._mbuf
    store.struct.pack_into(store._MARK_FMT, buf, 0, store.MARK_MAGIC, self.generation, delivered_nl, reserved_nl)
    store.struct.pack_into("<I", buf, 16, store.binascii.crc32(memoryview(buf)[:16]) & 0xFFFFFFFF)
    with open(self.dir + "/" + store.MARK, "wb") as f:
        f.write(buf[:10])
        f.flush()
        f.write(buf[10:])


MUTATIONS = {
    "inplace": lambda: setattr(store.Store, "save", _save_in_place),
    "noflush": lambda: setattr(ev.EventLog, "append_raw", _append_no_flush),
    "nomark": lambda: setattr(store, "recovered_delivered_nl", _recover_without_mark),
    "marktorn": lambda: setattr(store.Store, "save_mark", _mark_torn),
    "nomarkfile": lambda: setattr(store, "recovered_delivered_nl", _recover_without_mark_file),
}


def main(argv):
    step = 1
    first = 0
    last = -1
    quiet = False
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--quiet":
            quiet = True
        else:
            i += 1
            if a == "--step":
                step = int(argv[i])
            elif a == "--first":
                first = int(argv[i])
            elif a == "--last":
                last = int(argv[i])
            elif a == "--mutate":
                MUTATIONS[argv[i]]()
            else:
                raise SystemExit("unknown argument " + a)
        i += 1
    base = RamFlash(blank(BLOCKS))
    vfs.VfsLfs2.mkfs(base)
    base_image = base.image()
    full, full_o, cut = run(base_image, -1)
    total = full.writes
    assert not cut
    if last < 0 or last > total:
        last = total
    points = list(range(first, last + 1, step))
    if last not in points:
        points.append(last)
    fails = 0
    lost = 0
    max_over = 0
    for n in points:
        dev, o, cut = run(base_image, n)
        f, nl, over = verify(dev.image(), o)
        lost += nl
        if over > max_over:
            max_over = over
        if f:
            fails += 1
            if not quiet or fails <= 5:
                print("cut after %d writes: %s" % (n, "; ".join(f)))
    print("RESULT " + json.dumps({
        "writes_in_scenario": total, "log_records": o.last_seq, "dropped_upto_seq": o.log.dropping_upto,
        "mark_writes": full_o.marks,
        "cut_points": len(points), "failures": fails, "committed_records_lost": lost,
        "max_overcount_nl": max_over}))


if __name__ == "__main__":
    main(sys.argv)
