# Flash traffic of the checkpoint policy and the event log over simulated days, on real littlefs;
# prints one "RESULT {json}" line. Run by bench/logfigures.py under micropython (docs/figures.md):
#   micropython bench/flashday_mpy.py DAYS EVENTS_PER_DAY_SPEC(json)
# ruff: noqa: UP031
import json
import os
import sys

import vfs

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../tests/faults")
sys.path.insert(0, _here + "/../firmware")
sys.path.insert(0, _here + "/../tests/firmware")
from ramflash import RamFlash, blank  # noqa: E402

from fakes import FakeClock  # noqa: E402
from itpump import eventlog as ev  # noqa: E402
from itpump import store  # noqa: E402

PICO_BLOCKS = 352


class CountingFlash(RamFlash):
    def __init__(self, image):
        RamFlash.__init__(self, image)
        self.prog_bytes = 0

    def writeblocks(self, block, buf, off=None):
        self.prog_bytes += len(buf)
        RamFlash.writeblocks(self, block, buf, off)


def state_doc(delivered_nl, reserved_nl, ctr):
    # a realistic document: prescription, reservoir, guard buckets (24 x 1 h + 6 x 10 min), auth
    return {"rx": {"rx_id": 3, "basal": [[0, 20000], [28800, 25000], [72000, 20000]], "bolus_nl": 50000,
                   "lockout_s": 3600, "max_1h_nl": 80000, "max_24h_nl": 600000},
            "fill_nl": 20000000, "reservoir_nl": 20000000 - delivered_nl, "delivered_nl": delivered_nl,
            "reserved_nl": reserved_nl, "refills": 4,
            "guard": {"h24": [20000] * 24, "h1": [3333] * 6, "bucket_s": 1234567},
            "auth": {"patient": ctr, "clinician": 1042, "service": 7, "fails": 0, "lock_until_s": 0},
            "cal": {"pl_per_step": 52000, "pressure_offset_pa": -310}, "boot_count": 12, "wall_s": 200000000}


def main():
    days = int(sys.argv[1])
    per_day = json.loads(sys.argv[2])  # {"bolus": n, "refused": n, "alarm": n, "therapy": n, "auth": n}
    dev = CountingFlash(blank(PICO_BLOCKS))
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), "/fl")
    clock = FakeClock()
    st = store.Store("/fl/state")
    st.load()
    lg = ev.EventLog("/fl/log", clock)
    policy = store.CheckpointPolicy(clock)
    w0, e0, b0 = dev.writes, dev.erases, dev.prog_bytes
    rate = 20000
    delivered = 0
    reserved = 0
    ctr = 0
    saves = appends = 0
    minutes = days * 1440

    def spread(n):  # n events a day at evenly spaced minutes
        return set((i * 1440) // n + 7 for i in range(n)) if n else set()

    at = dict((k, spread(per_day[k])) for k in per_day)
    for m in range(minutes):
        clock.advance(60000)
        mod = m % 1440
        chunk = rate // 60
        if not store.may_deliver(delivered, chunk, reserved):
            reserved = store.reserve_mark(delivered, rate)
            policy.changed()
        delivered += chunk
        policy.progress()
        events = []
        if mod in at["bolus"]:
            ctr += 1
            reserved = store.reserve_mark(delivered, rate, extra_nl=50000)
            policy.changed()
            delivered += 50000
            events.append((ev.BOLUS_GIVEN, (50000,)))
        if mod in at["refused"]:
            events.append((ev.BOLUS_REFUSED, (50000, 2)))
        if mod in at["alarm"]:
            events += [(ev.ALARM_RAISED, (4,)), (ev.ALARM_ACKED, (4,)), (ev.ALARM_CLEARED, (4,))]
            policy.changed()
        if mod in at["therapy"]:
            events.append((ev.THERAPY, (rate, 3)))
            policy.changed()
        if mod in at["auth"]:
            events.append((ev.AUTH_FAILURE, (0, 0)))
        if mod % 60 == 59:
            events.append((ev.DELIVERY, (delivered, rate)))
        if policy.due():
            st.save(state_doc(delivered, reserved, ctr))
            policy.saved()
            saves += 1
        for code, vals in events:
            lg.append(code, *vals)
            appends += 1
    lg.close()
    log_bytes = 0
    for name in os.listdir("/fl/log"):
        log_bytes += os.stat("/fl/log/" + name)[6]
    writes = dev.writes - w0
    erases = dev.erases - e0
    print("RESULT " + json.dumps({
        "days": days, "saves": saves, "appends": appends, "programs": writes - erases, "erases": erases,
        "prog_bytes": dev.prog_bytes - b0, "log_bytes_on_flash": log_bytes, "log_seq": lg.seq,
        "doc_bytes": len(store.encode(state_doc(delivered, reserved, ctr), 1)), "blocks": PICO_BLOCKS}))
    vfs.umount("/fl")


main()
