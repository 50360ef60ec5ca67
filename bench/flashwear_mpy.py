# Flash wear of the firmware's writes over simulated days, per erase block, on real littlefs; prints
# one "RESULT {json}" line. Run by bench/flashwear.py under micropython (docs/figures.md):
#   micropython bench/flashwear_mpy.py DAYS RATE_NL_PER_H EVENTS_PER_DAY(json) MARK(1|0)
# MARK 0: the mark moves only with full saves (the old 20-minute horizon), for comparison.
# ruff: noqa: UP031
import json
import sys
from array import array

import vfs

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../tests/faults")
sys.path.insert(0, _here + "/../firmware")
sys.path.insert(0, _here + "/../tests/firmware")
from ramflash import RamFlash, blank  # noqa: E402

from fakes import FakeClock  # noqa: E402
from itpump import auth, store  # noqa: E402
from itpump import eventlog as ev  # noqa: E402

PICO_BLOCKS = 352
PROGSIZE = 256  # ports/rp2/modules/_boot.py: VfsLfs2(bdev, progsize=256)


class WearFlash(RamFlash):
    def __init__(self, image):
        RamFlash.__init__(self, image)
        self.per_block = array("I", [0] * self.block_count)

    def _erase(self, block):
        self.per_block[block] += 1
        RamFlash._erase(self, block)


def state_doc(delivered_nl, reserved_nl, ctr):
    # the state document (statedoc.StateDoc.document()) with a flex prescription, guard buckets, rotor gaps
    return {"v": 1, "rx": {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000,
                           "mode": "flex", "dose_ng_per_day": 5000000,
                           "flex": [[0, 20000], [480, 25000], [1200, 20000]],
                           "patient_bolus": {"dose_ng": 50000, "duration_min": 10, "lockout_min": 60,
                                             "max_per_day": 4}},
            "rx_id": 3, "therapy": {"suspended": False, "p_slot": -1, "periodic_skipped": 0,
                                    "pt_ages_s": [3600, 7200]}, "bolus": None,
            "reservoir": {"volume_nl": 20000000 - delivered_nl, "drug": "morphine", "conc_ug_per_ml": 10000,
                          "fill_nl": 20000000}, "delivered_nl": delivered_nl, "reserved_nl": reserved_nl,
            "total_nl": 41000000 + delivered_nl, "day_nl": delivered_nl % 500000,
            "guard": {"h24": [900] * 24, "h1": [150] * 6, "t_s": 1234567, "ctr": ctr},
            "cal": {"pl_per_step": 20000}, "boot_count": 12, "wall_s": 200000000, "tz_min": 60,
            "tod_ms": 43200000, "halt": 0, "svc": False, "rotor": [8000, 8000, 8000], "booked_nl": 2084}


def spread(n):  # n events a day at evenly spaced seconds
    return set((i * 86400) // n + 421 for i in range(n)) if n else set()


def main():
    days = int(sys.argv[1])
    rate = int(sys.argv[2])
    per_day = json.loads(sys.argv[3])  # {"bolus": n, "refused": n, "alarm": n}
    use_mark = sys.argv[4] == "1"
    horizon_ms = store.RESERVE_MS if use_mark else 1200000
    dev = WearFlash(blank(PICO_BLOCKS))
    vfs.VfsLfs2.mkfs(dev, progsize=PROGSIZE)
    vfs.mount(vfs.VfsLfs2(dev, progsize=PROGSIZE), "/fl")
    import os
    os.mkdir("/fl/data")
    clock = FakeClock()
    st = store.Store("/fl/data/state")
    st.load()
    lg = ev.EventLog("/fl/data/log", clock)
    ctrs = auth.FileCounters("/fl/data/ctr.json")
    policy = store.CheckpointPolicy(clock)
    ctr = 0
    delivered = 0
    reserved = store.reserve_mark(0, rate, horizon_ms)
    st.save(state_doc(0, reserved, ctr))
    e0 = dev.erases
    base = array("I", dev.per_block)
    saves = marks = appends = 0
    max_booked = 0
    at = dict((k, spread(per_day[k])) for k in per_day)
    t_ms = 0
    bolus_nl = 0
    for s in range(days * 86400):
        clock.advance(1000)
        t_ms += 1000
        delivered = rate * (t_ms // 1000) // 3600 + bolus_nl  # what the motor has given (nL)
        day_s = s % 86400
        events = []
        if use_mark and store.reserve_mark(delivered, rate, store.RESERVE_HEADROOM_MS) > reserved:
            reserved = store.reserve_mark(delivered, rate, horizon_ms)
            st.save_mark(delivered, reserved)
            marks += 1
        if day_s in at["bolus"]:
            ctr += 1
            ctrs.save({"patient": ctr, "clinician": 1042, "service": 7})
            reserved = store.reserve_mark(delivered, rate, horizon_ms, 5000)  # 50 ug at 10 mg/mL
            policy.changed()
            bolus_nl += 5000  # given within the second
            delivered += 5000
            events.append((ev.BOLUS_GIVEN, (5000,)))
        if day_s in at["refused"]:
            events.append((ev.BOLUS_REFUSED, (5000, 2)))
        if day_s in at["alarm"]:
            events += [(ev.ALARM_RAISED, (4,)), (ev.ALARM_ACKED, (4,))]
            policy.changed()
        if day_s % 3600 == 3599:
            events.append((ev.DELIVERY, (delivered, rate)))
        policy.progress()
        if policy.due() or (not use_mark and delivered > reserved - rate * 600 // 3600):
            reserved = store.reserve_mark(delivered, rate, horizon_ms)
            st.save(state_doc(delivered, reserved, ctr))
            policy.saved()
            saves += 1
        if reserved - delivered > max_booked:  # what a reset at this second would book
            max_booked = reserved - delivered
        for code, vals in events:
            lg.append(code, *vals)
            appends += 1
    lg.close()
    per = [dev.per_block[i] - base[i] for i in range(PICO_BLOCKS)]
    hot = max(per)
    print("RESULT " + json.dumps({
        "days": days, "rate_nl_per_h": rate, "mark": use_mark, "saves": saves, "marks": marks, "appends": appends,
        "erases": dev.erases - e0, "hottest_block": per.index(hot), "hottest_erases": hot,
        "blocks_erased": len([x for x in per if x]), "blocks": PICO_BLOCKS, "max_booked_nl": max_booked}))
    vfs.umount("/fl")


main()
