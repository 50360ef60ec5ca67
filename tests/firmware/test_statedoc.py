# The state document (statedoc.py): the keys a board already has on flash, such a document restored on a
# board upgraded in place, and what a restart after a power cut books (never under-counted, the reserve
# mark, an interrupted bolus abandoned) (CPython and micropython).
import json
import os

import pytest
import scratch
from test_app import RX_PB, Rig, programmed

from fakes import FakePumpBoard
from itpump import eventlog, statedoc, store

pytestmark = pytest.mark.micropython

# version 1, as the firmware before statedoc.py wrote it (app.state())
KEYS_V1 = ("v", "rx", "rx_id", "therapy", "bolus", "reservoir", "delivered_nl", "reserved_nl", "total_nl",
           "day_nl", "guard", "cal", "boot_count", "wall_s", "tz_min", "tod_ms", "halt", "svc", "rotor",
           "booked_nl")
OLD = {"v": 1, "rx": {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000,
                      "mode": "continuous", "dose_ng_per_day": 1000000},
       "rx_id": 3, "therapy": {"suspended": False, "p_slot": -1, "periodic_skipped": 0}, "bolus": None,
       "reservoir": {"capacity_nl": 20000000, "low_nl": 2000000, "empty_nl": 500000, "volume_nl": 19000000,
                     "used_pl": 0, "drug": "morphine", "conc_ug_per_ml": 10000, "mismatch_warning": False},
       "delivered_nl": 1000000, "reserved_nl": 1000000, "total_nl": 41000000, "day_nl": 300000,
       "guard": None, "cal": {"pl_per_step": 20000}, "boot_count": 12, "wall_s": 200000000, "tz_min": 60,
       "tod_ms": 43200000, "halt": 0, "svc": False, "rotor": None, "booked_nl": 2084}


def test_the_document_has_the_keys_on_flash():
    r = programmed()
    doc = r.a.doc.document()
    assert sorted(doc) == sorted(KEYS_V1) and doc["v"] == statedoc.VERSION == 1
    json.dumps(doc)
    r.close()


def test_a_document_written_before_is_restored():
    d = scratch.make("statedoc")
    os.mkdir(d + "/data")
    store.Store(d + "/data/state").save(OLD)
    r = Rig(FakePumpBoard(), d=d)
    a = r.a
    assert a.doc.problem is None and a.doc.rx_id == 3 and a.doc.boot_count == 13
    assert a.pump.therapy is not None and a.pump.delivered_nl == 1000000 and a.pump.total_nl == 41000000
    assert a.time.source == "restored" and a.time.tz_min == 60 and a.doc.booked_total_nl == 2084
    st = r.read("status")
    assert st["boot_count"] == 13 and st["unconfirmed_nl"] == {"boot": 0, "total": 2084}
    r.close()


# -- restart ----------------------------------------------------------------------------------------
def _power_cut(r):
    """A new app on the same files and board after a cut (the motor's emitted pulses stay the truth)."""
    r.a.log.close()
    r.b.motor.stop()
    r.b.motor.take_confirmed()  # confirmed by the driver, never seen by the app: lost with the power
    r2 = Rig(r.b, d=r.dir)
    r2.ctr = r.ctr
    r2.a.boot()
    return r2


def test_a_restart_keeps_the_totals_never_under_counted_and_abandons_the_bolus():
    r = programmed(RX_PB)
    r.run_ms(120000)
    r.ok("patient_bolus", role="patient")
    r.run_ms(20000)  # the bolus is mid-way
    truth = r.b.motor.emitted * 20
    before = r.read("status")
    r2 = _power_cut(r)
    st = r2.read("status")
    assert st["delivered_nl"] >= truth and st["delivered_total_nl"] >= before["delivered_total_nl"]
    assert st["reservoir_nl"] <= 20000000 - truth
    assert st["therapy"]["bolus"] is None and st["running"]  # basal resumes, the bolus does not
    assert eventlog.BOLUS_ABANDONED in r2.codes()
    m = r2.change("patient_bolus", role="patient")  # the lockout survived the reset
    assert m["error"]["code"] == "LOCKOUT"
    r2.run_ms(60000)
    assert r2.read("status")["delivered_nl"] > st["delivered_nl"] - 1
    r2.close()


def test_a_reset_books_at_most_two_minutes_of_basal_and_says_so():
    r = programmed()  # 40000 nL/h: 2 min = 1334 nL (rounded up)
    saves = []
    real = r.a.doc.store.save_mark
    r.a.doc.store.save_mark = lambda d, m: (saves.append(m), real(d, m))[1]
    r.run_ms(15 * 60000)  # past the 10-minute full checkpoint
    assert 8 <= len(saves) <= 11, saves  # the mark moves about every 90 s
    truth = r.b.motor.emitted * 20
    r2 = _power_cut(r)
    st = r2.read("status")
    booked = st["unconfirmed_nl"]["boot"]
    assert st["delivered_nl"] >= truth  # never under-counted
    assert 0 < booked <= 1334 + 20 + 1, booked  # 2 min of basal + a step in flight
    assert st["delivered_nl"] - truth <= booked
    assert st["unconfirmed_nl"]["total"] == booked
    recs = [f for c, f in r2.events() if c == eventlog.RESERVE_BOOKED]
    assert [eventlog.fields(eventlog.RESERVE_BOOKED, f) for f in recs] == [{"volume_nl": booked, "total_nl": booked}]
    r2.run_ms(5 * 60000)
    truth = r2.b.motor.emitted * 20
    r3 = _power_cut(r2)
    st3 = r3.read("status")
    assert st3["delivered_nl"] >= truth and 0 < st3["unconfirmed_nl"]["boot"] <= 1334 + 21
    assert st3["unconfirmed_nl"]["total"] == booked + st3["unconfirmed_nl"]["boot"]  # kept across boots
    r3.close()


def test_a_damaged_mark_books_the_most_it_could_have_reached():
    r = programmed()
    r.run_ms(3 * 60000)
    truth = r.b.motor.emitted * 20
    with open(r.dir + "/data/state/mark", "r+b") as f:
        f.seek(12)
        f.write(b"\xff")
    r2 = _power_cut(r)
    st = r2.read("status")
    # 12 min of basal past the state's mark: the farthest the lost mark could have moved
    assert st["delivered_nl"] >= truth and st["delivered_nl"] >= 12 * 40000 // 60 + 1334
    assert eventlog.STORE_PROBLEM in r2.codes()
    r2.close()
