# The runtime therapy over a valid prescription (itpump/therapy.py): the basal schedule by time of day,
# periodic, patient, clinician and priming boluses, the concentration bridge, suspension, and the state a
# checkpoint keeps (to_dict / from_dict). The prescription's limits: test_prescription_validation.py.
import pytest

from fakes import raises
from itpump import drugs, therapy
from itpump.dosing import Dosing
from rx_samples import patient, rx_cont, rx_flex, rx_periodic

pytestmark = pytest.mark.micropython

H = 3600000  # ms


def run(th, d, tod, ms, tick_ms=1000):
    """Drive dosing over `ms` from tod with confirmed delivery; returns the new tod."""
    while ms > 0:
        step = tick_ms if ms > tick_ms else ms
        tod = (tod + step) % therapy.DAY_MS
        d.confirm(d.tick(th, step, tod))
        ms -= step
    return tod


# -- basal schedule --------------------------------------------------------------------------------
def test_continuous_rate_through_concentration():
    th = therapy.Therapy(rx_cont())
    # 1.2 mg/day at 10 mg/mL = 0.12 mL/day = 5000 nL/h
    assert th.rates == [5000]
    assert th.rate_nl_per_h(0) == 5000 and th.rate_nl_per_h(therapy.DAY_MS - 1) == 5000
    assert th.day_volume_nl == 120000 and th.day_dose_ng == 1200000


def test_flex_rate_at_each_step():
    th = therapy.Therapy(rx_flex())
    assert th.rates == [6250, 12500, 10000]
    assert th.rate_nl_per_h(0) == 6250
    assert th.rate_nl_per_h(420 * 60000 - 1) == 6250
    assert th.rate_nl_per_h(420 * 60000) == 12500
    assert th.seg_end_ms == 1320 * 60000
    assert th.rate_nl_per_h(therapy.DAY_MS - 1) == 10000 and th.seg_end_ms == therapy.DAY_MS
    # 7 h at 300 + 15 h at 600 + 2 h at 480 ug/day
    assert th.day_dose_ng == (300000 * 420 + 600000 * 900 + 480000 * 120) // 1440


def test_flex_day_delivered_matches_schedule():
    th = therapy.Therapy(rx_flex())
    d = Dosing(20000)
    run(th, d, 0, therapy.DAY_MS, 5000)
    exact = 6250 * 7 + 12500 * 15 + 10000 * 2  # nL
    assert th.day_volume_nl == exact
    assert exact * 1000 - 20000 < d.delivered_nl * 1000 + d._deliv_pl <= exact * 1000


# -- periodic --------------------------------------------------------------------------------------
def test_periodic_bolus_every_n_hours():
    th = therapy.Therapy(rx_periodic())
    pb = th.periodic
    assert pb.volume_nl == 100000 and pb.rate_nl_per_h == 600000  # 50 ug at 500 ug/mL over 10 min
    assert th.day_dose_ng == 200000 and th.day_volume_nl == 400000
    d = Dosing(20000)
    tod = run(th, d, 0, H)  # programmed at 00:00, first slot 01:00
    assert th.bolus_kind == therapy.PERIODIC and d.delivered_nl == 0
    tod = run(th, d, tod, 10 * 60000)
    assert th.bolus_kind is None and d.delivered_nl == 100000
    tod = run(th, d, tod, 6 * H - 10 * 60000)  # 07:00 next
    assert th.bolus_kind == therapy.PERIODIC
    tod = run(th, d, tod, 18 * H)
    assert d.delivered_nl == 400000 and tod == H


def test_periodic_programmed_mid_slot_does_not_fire_at_once():
    th = therapy.Therapy(rx_periodic())
    th.update(3 * H)
    assert th.bolus_kind is None and not th.periodic_pending
    th.update(7 * H)
    assert th.bolus_kind == therapy.PERIODIC


# -- patient bolus ---------------------------------------------------------------------------------
def test_patient_bolus_lockout_and_max_per_day():
    th = therapy.Therapy(rx_cont(patient_bolus=patient()))
    assert th.patient.volume_nl == 10000
    d = Dosing(20000)
    now_s = 1000
    assert th.request_patient_bolus(now_s) is None
    assert th.bolus_kind == therapy.PATIENT
    code, msg = th.request_patient_bolus(now_s + 1)
    assert code == therapy.R_BUSY
    tod = run(th, d, 0, 5 * 60000)
    assert th.bolus_kind is None
    code, msg = th.request_patient_bolus(now_s + 3599)
    assert code == therapy.R_LOCKOUT and "1 s" in msg
    assert th.request_patient_bolus(now_s + 3600) is None
    run(th, d, tod, 5 * 60000)
    assert th.request_patient_bolus(now_s + 7200) is None
    run(th, d, tod, 5 * 60000)
    code, msg = th.request_patient_bolus(now_s + 10800)
    assert code == therapy.R_MAX_PER_DAY, (code, msg)
    assert "next in 75600 s" in msg
    # the refusal was not counted: the first one leaves the 24 h window on time
    assert th.request_patient_bolus(now_s + 86399) == (therapy.R_MAX_PER_DAY, "3 in 24 h already; next in 1 s")
    assert th.request_patient_bolus(now_s + 86400) is None


def test_patient_bolus_refusals():
    th = therapy.Therapy(rx_cont())
    assert th.request_patient_bolus(0)[0] == therapy.R_NOT_PROGRAMMED
    th = therapy.Therapy(rx_cont(patient_bolus=patient()))
    th.suspend(True)
    assert th.request_patient_bolus(0)[0] == therapy.R_SUSPENDED
    th.suspend(False)
    assert th.request_patient_bolus(0) is None


def test_patient_bolus_adds_to_basal_and_ends_at_volume():
    th = therapy.Therapy(rx_cont(patient_bolus=patient()))
    d = Dosing(1000)
    th.request_patient_bolus(0)
    assert th.rate_nl_per_h(0) == 5000 + 120000
    run(th, d, 0, 10 * 60000, 700)
    # 10 min of basal plus exactly the 10000 nL bolus
    assert th.bolus_kind is None
    assert 10000 + 833 - 1 <= d.delivered_nl <= 10000 + 833


def test_reprogram_keeps_patient_history():
    old = therapy.Therapy(rx_cont(patient_bolus=patient()))
    assert old.request_patient_bolus(100) is None
    new = therapy.Therapy(rx_cont(dose_ng_per_day=1500000, patient_bolus=patient()))
    new.adopt(old)
    assert new.request_patient_bolus(200)[0] == therapy.R_LOCKOUT
    assert new.request_patient_bolus(3700) is None


# -- the state document (checkpoint) --------------------------------------------------------------------
# The therapy part of a checkpoint as the firmware has written it to flash since STATE_V 1 (app.th_dict):
# a board upgraded in place must restore it. Periodic slot 1, two skipped, patient boluses 100 s and
# 4000 s before the checkpoint, a bridge 249000 nL from its end at the old 1000 ug/mL.
OLD_THERAPY_JSON = ('{"suspended": false, "p_slot": 1, "periodic_skipped": 2, "pt_ages_s": [100, 4000], '
                    '"bridge": [249000, [0], [4167], 1000]}')


def rx_state():
    return rx_periodic(dose_ng_per_day=100000, patient_bolus=patient(dose_ng=20000))


def test_an_old_state_document_restores_the_therapy_as_it_was():
    import json

    doc = json.loads(OLD_THERAPY_JSON)
    th = therapy.Therapy.from_dict(rx_state(), doc, 10000)  # uptime 10000 s at this boot
    assert th.to_dict(10000) == doc  # written back with the same keys and values
    assert not th.suspended and th.periodic_skipped == 2
    assert th.bridge_left_nl == 249000 and th.basal_nl_per_h(0) == 4167 and th.peak_basal_nl_per_h() == 8333
    th.update(7 * H)  # still slot 1 (6 h..12 h after 01:00): the restored slot does not fire again
    assert not th.periodic_pending and th.bolus_kind is None
    th.update(13 * H)
    assert th.bolus_kind == therapy.PERIODIC  # slot 2: fires (bridged at the old concentration)
    th.cancel_bolus()
    r = th.request_patient_bolus(10000)  # the last one 100 s ago, lockout 60 min
    assert r[0] == therapy.R_LOCKOUT and "3500 s" in r[1], r
    assert th.request_patient_bolus(13500) is None
    th.cancel_bolus()
    r = th.request_patient_bolus(17100)  # three in 24 h now: the 4000 s-old one still counts
    assert r[0] == therapy.R_MAX_PER_DAY, r
    assert th.to_dict(17100)["pt_ages_s"] == [3600, 7200, 11100]


def test_a_fresh_therapy_saves_and_restores_the_defaults():
    th = therapy.Therapy(rx_cont())
    d = th.to_dict(50)
    assert d == {"suspended": False, "p_slot": -1, "periodic_skipped": 0}
    th2 = therapy.Therapy.from_dict(rx_cont(), {}, 50)  # a document without a therapy part: the defaults
    assert th2.to_dict(50) == d and th2.bridge_left_nl == 0
    th.suspend(True)
    assert therapy.Therapy.from_dict(rx_cont(), th.to_dict(50), 80).suspended


def test_a_restored_document_with_more_boluses_than_the_new_maximum_keeps_the_newest():
    th = therapy.Therapy.from_dict(rx_cont(patient_bolus=patient(max_per_day=2)), {"pt_ages_s": [10, 5000, 9000]}, 9500)
    assert th.to_dict(9500)["pt_ages_s"] == [10, 5000]


# -- clinician bolus -------------------------------------------------------------------------------
def test_clinician_bolus():
    th = therapy.Therapy(rx_cont())
    assert th.clinician_bolus(500000, 30) is None  # 0.5 mg = 50 uL over 30 min
    assert th.bolus_kind == therapy.CLINICIAN and th.bolus_left_nl == 50000 and th.bolus_rate == 100000
    assert th.clinician_bolus(500000, 30)[0] == therapy.R_BUSY
    assert th.cancel_bolus() == (therapy.CLINICIAN, 50000)
    assert th.bolus_nl_per_h() == 0


def test_clinician_bolus_limits_change_nothing():
    th = therapy.Therapy(rx_cont())
    e = raises(therapy.LimitError, th.clinician_bolus, 16000000, 30)
    assert e.field == "dose_ng" and e.limit == 15000000
    e = raises(therapy.LimitError, th.clinician_bolus, 5000000, 1)
    assert e.field == "duration_min"  # 0.5 mL in 1 min
    raises(therapy.LimitError, th.clinician_bolus, 500000, 0)
    raises(therapy.LimitError, th.clinician_bolus, 500000, 1441)
    raises(therapy.LimitError, th.clinician_bolus, 1.5, 10)
    assert th.bolus_kind is None


# -- priming ---------------------------------------------------------------------------------------
def test_priming_replaces_basal_then_basal_resumes():
    th = therapy.Therapy(rx_cont())
    assert th.prime(12) is None  # 200 uL catheter in 12 min = 1 mL/h
    assert th.bolus_kind == therapy.PRIMING and th.bolus_rate == 1000000
    assert th.basal_nl_per_h(0) == 0 and th.rate_nl_per_h(0) == 1000000
    d = Dosing(20000)
    tod = run(th, d, 0, 12 * 60000)
    assert th.bolus_kind is None and d.delivered_nl == 200000
    assert th.rate_nl_per_h(tod) == 5000


def test_priming_limits():
    th = therapy.Therapy(rx_cont())
    e = raises(therapy.LimitError, th.prime, 10)  # 1.2 mL/h
    assert e.field == "duration_min" and e.limit == 12
    raises(therapy.LimitError, th.prime, 30, 0)
    raises(therapy.LimitError, th.prime, 30, drugs.MAX_BOLUS_NL + 1)
    assert th.bolus_kind is None
    assert th.prime(30, 100000) is None and th.bolus_left_nl == 100000


# -- bridge bolus after a refill with another concentration ----------------------------------------
def test_bridge_runs_old_concentration_until_dead_volume_then_new():
    old = therapy.Therapy(rx_cont(conc_ug_per_ml=10000))  # 5000 nL/h
    new = therapy.Therapy(rx_cont(conc_ug_per_ml=20000))  # 2500 nL/h
    assert new.start_bridge(old, 40000) == 240000  # pump tube + 200 uL catheter
    assert new.rate_nl_per_h(0) == 5000  # same 1.2 mg/day through the old 10 mg/mL
    d = Dosing(1000)
    tod = run(th=new, d=d, tod=0, ms=47 * H + 59 * 60000)  # 240 uL at 5 uL/h takes 48 h
    assert new.bridge_left_nl > 0 and new.rate_nl_per_h(tod) == 5000
    tod = run(new, d, tod, 60000 + 1000)
    assert new.bridge_left_nl == 0 and new.rate_nl_per_h(tod) == 2500
    assert 240000 <= d.delivered_nl <= 240000 + 5


def test_bridge_same_concentration_is_nothing():
    old = therapy.Therapy(rx_cont())
    new = therapy.Therapy(rx_cont(dose_ng_per_day=1500000))
    assert new.start_bridge(old, 40000) == 0 and new.bridge_left_nl == 0


def test_bridge_flex_uses_new_doses_through_old_concentration():
    old = therapy.Therapy(rx_flex(conc_ug_per_ml=1000))
    new = therapy.Therapy(rx_flex())
    new.start_bridge(old, 0)
    assert new.rate_nl_per_h(0) == 12500 and new.rate_nl_per_h(420 * 60000) == 25000
    new.cancel_bridge()
    assert new.rate_nl_per_h(0) == 6250


def test_bridge_rate_over_limit_refused():
    old = therapy.Therapy(rx_cont(conc_ug_per_ml=1000, dose_ng_per_day=500000))
    new = therapy.Therapy(rx_cont(conc_ug_per_ml=10000, dose_ng_per_day=12000001))  # 12.000001 mL/day at 1 mg/mL
    e = raises(therapy.LimitError, new.start_bridge, old, 0)
    assert e.field == "bridge.nl_per_day" and e.value == 12000001 and e.limit == drugs.MAX_BASAL_NL_PER_DAY
    assert new.bridge_left_nl == 0
    raises(therapy.LimitError, new.start_bridge, old, -1)
    new = therapy.Therapy(rx_cont(conc_ug_per_ml=10000, dose_ng_per_day=12000000))  # exactly at the limit
    assert new.start_bridge(old, 0) == 200000 and new.rate_nl_per_h(0) == drugs.MAX_BASAL_NL_PER_H


def test_bolus_during_bridge_uses_old_concentration_for_the_old_fluid():
    old = therapy.Therapy(rx_cont(conc_ug_per_ml=10000))
    new = therapy.Therapy(rx_cont(conc_ug_per_ml=20000, patient_bolus=patient()))
    new.start_bridge(old, 40000)
    assert new.request_patient_bolus(0) is None
    assert new.bolus_left_nl == 10000  # 100 ug at the old 10 mg/mL, not 5000 nL at the new
    new.cancel_bolus()
    new.bridge_left_nl = 4000  # only 40 ug of old fluid left: the other 60 ug at 20 mg/mL = 3000 nL
    assert new.clinician_bolus(100000, 5) is None and new.bolus_left_nl == 7000


def test_bridge_to_another_drug_uses_old_rates_and_holds_boluses():
    old = therapy.Therapy(rx_cont())
    new = therapy.Therapy(rx_periodic(patient_bolus=patient(dose_ng=20000)))
    assert new.start_bridge(old, 0) == 200000
    assert new.rate_nl_per_h(0) == 5000
    assert new.request_patient_bolus(0)[0] == therapy.R_BRIDGE
    new.update(0)
    new.update(2 * H)  # periodic slot at 01:00 passed: it waits for the bridge
    assert new.periodic_pending and new.bolus_kind is None
    d = Dosing(1000)
    run(new, d, 2 * H, 40 * H + 1000, 5000)
    assert new.bridge_left_nl == 0 and new.bolus_kind == therapy.PERIODIC
    # old prescription without basal cannot push its drug out
    raises(therapy.LimitError, therapy.Therapy(rx_cont()).start_bridge, therapy.Therapy(rx_periodic()), 0)


# -- suspension ------------------------------------------------------------------------------------
def test_suspend_stops_basal_and_cancels_bolus():
    th = therapy.Therapy(rx_cont())
    th.clinician_bolus(100000, 10)
    assert th.suspend(True) == (therapy.CLINICIAN, 10000)
    assert th.rate_nl_per_h(0) == 0
    th.suspend(False)
    assert th.rate_nl_per_h(0) == 5000 and th.bolus_kind is None
