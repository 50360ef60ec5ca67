# The state document (statedoc.py) keeps its shape: the keys a board already has on flash, and such a
# document restored on a board upgraded in place (CPython and micropython).
import json
import os

import pytest
import scratch
from test_app import Rig, programmed

from fakes import FakePumpBoard
from itpump import statedoc, store

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
