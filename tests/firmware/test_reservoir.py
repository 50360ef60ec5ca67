# Reservoir volume, low / empty, refill reconciliation and bridge trigger (CPython and micropython).
import pytest

from fakes import raises
from itpump import therapy
from itpump.dosing import Dosing
from itpump.reservoir import EMPTY_NL, LOW_NL, Reservoir

pytestmark = pytest.mark.micropython

ML = 1000000  # nL


def filled(vol_nl=20 * ML, conc=10000, drug="morphine", capacity=20 * ML):
    r = Reservoir(capacity)
    r.refill(drug, conc, vol_nl, 0)
    return r


def test_draw_rounds_toward_empty():
    r = filled()
    r.draw_pl(1)
    assert r.volume_nl() == 20 * ML - 1  # 1 pL drawn counts as 1 nL gone
    r.draw_pl(999)
    assert r.volume_nl() == 20 * ML - 1
    r.draw_pl(1000 * 1500)
    assert r.volume_nl() == 20 * ML - 1501


def test_low_and_empty_thresholds():
    r = filled(LOW_NL + 1)
    assert not r.is_low() and not r.is_empty()
    r.draw_pl(1000)
    assert r.is_low() and not r.is_empty()
    r.draw_pl((LOW_NL - EMPTY_NL - 1) * 1000)
    assert not r.is_empty()
    r.draw_pl(1)
    assert r.is_empty()
    r.draw_pl(10 * ML * 1000)  # overrun: never reported negative
    assert r.volume_nl() == 0 and r.is_empty()


def test_days_to_empty():
    r = filled(20 * ML)
    assert r.days_to_empty(500000) == 39  # 19.5 mL usable at 0.5 mL/day
    assert r.hours_to_empty(500000) == 936
    assert r.days_to_empty(0) == -1
    r.draw_pl(20 * ML * 1000)
    assert r.days_to_empty(500000) == 0


def test_first_fill_has_nothing_to_reconcile():
    r = Reservoir()
    res = r.refill("morphine", 10000, 20 * ML, 0)
    assert not res["warning"] and not res["bridge"] and r.volume_nl() == 20 * ML


def test_refill_within_tolerance():
    r = filled()
    r.draw_pl(15 * ML * 1000)  # 5 mL left by the count
    res = r.refill("morphine", 10000, 20 * ML, 4 * ML)  # 1 mL less aspirated: at the limit
    assert res["expected_nl"] == 5 * ML and res["mismatch_nl"] == ML and res["tolerance_nl"] == ML
    assert not res["warning"] and not r.mismatch_warning and not res["bridge"]
    assert r.volume_nl() == 20 * ML


def test_refill_mismatch_warns_pocket_fill_or_leak():
    r = filled()
    r.draw_pl(15 * ML * 1000)
    res = r.refill("morphine", 10000, 20 * ML, 4 * ML - 1)  # less than expected: leak or pocket
    assert res["warning"] and r.mismatch_warning and res["mismatch_nl"] == ML + 1
    r.draw_pl(15 * ML * 1000)
    res = r.refill("morphine", 10000, 20 * ML, 6 * ML + 1)  # more than expected
    assert res["warning"]
    r.draw_pl(15 * ML * 1000)
    assert not r.refill("morphine", 10000, 20 * ML, 5 * ML)["warning"]
    assert not r.mismatch_warning


def test_forty_ml_pump_tolerance_scales():
    r = filled(40 * ML, capacity=40 * ML)
    assert r.tolerance_nl == 2 * ML
    assert not r.refill("morphine", 10000, 40 * ML, 38 * ML)["warning"]


def test_refill_with_new_concentration_asks_for_a_bridge():
    r = filled()
    assert r.refill("morphine", 20000, 20 * ML, 20 * ML)["bridge"]
    assert r.conc_ug_per_ml == 20000
    assert r.refill("baclofen", 2000, 20 * ML, 20 * ML)["bridge"]
    assert not r.refill("baclofen", 2000, 20 * ML, 20 * ML)["bridge"]


def test_bad_refill_changes_nothing():
    r = filled()
    r.draw_pl(5 * ML * 1000)
    before = r.to_dict()
    e = raises(therapy.LimitError, r.refill, "morphine", 10000, 21 * ML, 15 * ML)
    assert e.field == "added_nl" and e.limit == 20 * ML
    assert raises(therapy.LimitError, r.refill, "morphine", 30000, 20 * ML, 15 * ML).field == "conc_ug_per_ml"
    assert raises(therapy.LimitError, r.refill, "water", 1, 20 * ML, 15 * ML).field == "drug"
    assert raises(therapy.LimitError, r.refill, "morphine", 10000, 0, 15 * ML).field == "added_nl"
    assert raises(therapy.LimitError, r.refill, "morphine", 10000, 20 * ML, -1).field == "removed_nl"
    assert raises(therapy.LimitError, r.refill, "morphine", 10000, 20 * ML, 1.5).field == "removed_nl"
    assert r.to_dict() == before


def test_construction_limits():
    assert raises(therapy.LimitError, Reservoir, 30 * ML).field == "capacity_nl"
    assert raises(therapy.LimitError, Reservoir, 20 * ML, 100, 500).field == "low_nl"
    assert raises(therapy.LimitError, Reservoir, 20 * ML, LOW_NL, 6 * ML).field == "empty_nl"


def test_persist_round_trip():
    r = filled()
    r.draw_pl(1234567)
    r2 = Reservoir.from_dict(r.to_dict())
    assert r2.to_dict() == r.to_dict() and r2.volume_nl() == r.volume_nl()


def test_refill_to_bridge_end_to_end():
    # A refill at double the concentration: reservoir asks for the bridge, therapy runs it, dosing
    # draws the reservoir from confirmed steps only.
    old = therapy.Therapy({"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 100000,
                     "mode": "continuous", "dose_ng_per_day": 2400000})  # 10 uL/h
    r = filled(20 * ML)
    res = r.refill("morphine", 20000, 20 * ML, 20 * ML)
    new = therapy.Therapy(dict(old.prescription(), conc_ug_per_ml=20000))
    assert res["bridge"] and new.start_bridge(old, 20000) == 120000
    d = Dosing(20000)
    tod = 0
    for _ in range(12 * 720):  # 12 h in 5 s ticks: 120 uL at 10 uL/h
        tod = (tod + 5000) % therapy.DAY_MS
        r.draw_pl(d.confirm(d.tick(new, 5000, tod)))
    assert new.bridge_left_nl == 0 and new.rate_nl_per_h(tod) == 5000
    assert r.volume_nl() == 20 * ML - d.delivered_nl_up() == 20 * ML - 120000
