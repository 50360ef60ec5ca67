# Auth layer of the link: HMAC, roles, counters, lock-out, retries (CPython and micropython).
import json

import pytest

from fakes import FakeClock, raises
from itpump import auth, protocol

pytestmark = pytest.mark.micropython

# RFC 4231 test cases 1, 2, 3, 4, 6, 7 (5 is a truncated output): key, data, HMAC-SHA256
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]

# Fixed test keys (random-looking, distinct per role); never used outside tests.
KEYS = {
    auth.PATIENT: bytes((i * 37 + 11) % 256 for i in range(32)),
    auth.CLINICIAN: bytes((i * 91 + 5) % 256 for i in range(32)),
    auth.SERVICE: bytes((i * 53 + 200) % 256 for i in range(32)),
}


class FakeCounters:
    def __init__(self, data=None, fail_load=False):
        self.data = dict(data or {})
        self.saves = []
        self.fail_load = fail_load
        self.fail_save = False

    def load(self):
        if self.fail_load:
            raise OSError(5)
        return dict(self.data)

    def save(self, d):
        if self.fail_save:
            raise OSError(28)
        self.data = dict(d)
        self.saves.append(dict(d))


class Pump:
    """Fake ops table recording every state change."""

    def __init__(self, counters=None):
        self.applied = []
        self.counters = counters
        self.ctr_saved_before_apply = []
        self.ops = {"status": self.read, "ping": self.read, "logs": self.read}
        for role in auth.PERMISSIONS:
            for op in auth.PERMISSIONS[role]:
                self.ops[op] = (self.change_fn(op), protocol.CHANGE)

    def read(self, args):
        return {"n": len(self.applied)}

    def change_fn(self, op):
        def fn(args):
            if self.counters is not None:
                self.ctr_saved_before_apply.append(dict(self.counters.data))
            self.applied.append((op, args))
            return {"applied": len(self.applied)}
        return fn


def make(keys=KEYS, counters=None, **kw):
    clock = FakeClock()
    counters = counters if counters is not None else FakeCounters()
    events = []
    au = auth.Authenticator(clock, counters, keys=keys, on_event=lambda k, i: events.append((k, i)), **kw)
    pump = Pump(counters)
    return au, pump, clock, counters, events


def frame(op, role=None, ctr=None, req_id=1, args=None, key=None, mac=None):
    d = {"id": req_id, "op": op}
    if args is not None:
        d["args"] = args
    if role is not None:
        d["role"] = role
    if ctr is not None:
        d["ctr"] = ctr
    body = json.dumps(d).encode()
    if mac is None and key is not None:
        mac = auth.hmac_hex(key, body)
    return body if mac is None else body + b"\t" + mac.encode()


def signed(op, role, ctr, req_id=1, args=None):
    return frame(op, role, ctr, req_id, args, KEYS[role])


def send(line, pump, au):
    return json.loads(protocol.dispatch(line, pump.ops, au))


def code(reply):
    return None if reply["ok"] else reply["error"]["code"]


# -- HMAC ------------------------------------------------------------------------------------------


def test_hmac_sha256_rfc4231_vectors():
    for key, data, want in RFC4231:
        assert auth.hmac_hex(key, data) == want, want


def test_hmac_agrees_with_cpython_hmac_when_present():
    try:
        import hashlib
        import hmac
    except ImportError:
        return  # micropython: the RFC vectors above are the reference
    for n in (0, 1, 31, 32, 63, 64, 65, 200):
        key = bytes((i * 7 + n) % 256 for i in range(n))
        msg = bytes((i * 13) % 256 for i in range(n * 3))
        assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_equal_compares_whole_strings():
    assert auth.equal(b"abc", b"abc")
    assert not auth.equal(b"abc", b"abd")
    assert not auth.equal(b"abc", b"xbc")
    assert not auth.equal(b"abc", b"ab")
    assert auth.equal(b"", b"")


# -- keys ------------------------------------------------------------------------------------------


def test_check_key_refuses_bad_keys():
    assert auth.check_key(auth.PATIENT, KEYS[auth.PATIENT]) == KEYS[auth.PATIENT]
    raises(ValueError, auth.check_key, "admin", KEYS[auth.PATIENT])
    raises(ValueError, auth.check_key, auth.PATIENT, b"short")
    raises(ValueError, auth.check_key, auth.PATIENT, b"\x00" * 32)  # placeholder, not a secret
    raises(ValueError, auth.check_key, auth.PATIENT, "x" * 32)


def test_keys_from_json():
    import binascii

    hx = str(binascii.hexlify(KEYS[auth.CLINICIAN]), "ascii")
    got = auth.keys_from_json(json.dumps({"v": 1, "keys": {"clinician": hx}}))
    assert got == {"clinician": KEYS[auth.CLINICIAN]}
    for bad in ("nope", "[]", '{"v":2,"keys":{}}', json.dumps({"v": 1, "keys": {"clinician": hx[:-2]}}),
                json.dumps({"v": 1, "keys": {"clinician": "zz" * 32}}),
                json.dumps({"v": 1, "keys": {"root": hx}})):
        raises(ValueError, auth.keys_from_json, bad)


def test_bad_keys_and_settings_refused_at_construction():
    raises(ValueError, auth.Authenticator, FakeClock(), FakeCounters(), {auth.PATIENT: b"1234"})
    raises(ValueError, auth.Authenticator, FakeClock(), FakeCounters(), KEYS, None, None, -1)
    raises(ValueError, auth.Authenticator, FakeClock(), FakeCounters(), KEYS, delay_ms=0)
    raises(ValueError, auth.Authenticator, FakeClock(), FakeCounters(), KEYS, cache_size=0)


# -- roles -----------------------------------------------------------------------------------------


def test_every_role_may_do_its_ops_and_nothing_else():
    au, pump, _, _, events = make(quiet_ms=0)
    ctr = 0
    for role in auth.ROLES:
        for other in auth.ROLES:
            for op in auth.PERMISSIONS[other]:
                ctr += 1
                before = len(pump.applied)
                r = send(signed(op, role, ctr, req_id=ctr), pump, au)
                if other == role:
                    assert r["ok"] and r["id"] == ctr, (role, op, r)
                    assert pump.applied[-1][0] == op
                else:
                    assert code(r) == protocol.E_AUTH_FORBIDDEN, (role, op, r)
                    assert len(pump.applied) == before
    n_ops = sum(len(auth.PERMISSIONS[r]) for r in auth.ROLES)
    assert len(pump.applied) == n_ops
    assert len([e for e in events if e[0] == auth.EV_FAIL]) == n_ops * 2


def test_reads_need_no_role_even_without_keys():
    au, pump, _, _, _ = make(keys=None)
    for op in ("status", "ping", "logs"):
        r = send(frame(op, req_id=4), pump, au)
        assert r == {"id": 4, "ok": True, "result": {"n": 0}}


def test_unmarked_op_in_the_permission_table_is_still_guarded():
    au, pump, _, _, _ = make()
    pump.ops["bolus"] = pump.change_fn("bolus")  # forgot the CHANGE mark
    assert code(send(frame("bolus", req_id=2), pump, au)) == protocol.E_AUTH_MISSING
    assert pump.applied == []


def test_change_op_unknown_to_the_permission_table_is_forbidden_for_all():
    au, pump, _, _, _ = make()
    pump.ops["secret"] = (pump.change_fn("secret"), protocol.CHANGE)
    for i, role in enumerate(auth.ROLES):
        assert code(send(signed("secret", role, i + 1), pump, au)) == protocol.E_AUTH_FORBIDDEN
    assert pump.applied == []


def test_change_without_authenticator_is_refused():
    pump = Pump()
    r = json.loads(protocol.dispatch(signed("bolus", auth.CLINICIAN, 1), pump.ops))
    assert code(r) == protocol.E_AUTH_NOKEYS and pump.applied == []
    assert json.loads(protocol.dispatch(frame("status"), pump.ops))["ok"]


# -- refusals --------------------------------------------------------------------------------------


def test_no_keys_refuses_every_change_with_a_clear_code():
    au, pump, _, _, events = make(keys=None, free_failures=0)
    assert not au.has_keys()
    for i, role in enumerate(auth.ROLES):
        for op in auth.PERMISSIONS[role]:
            r = send(signed(op, role, i + 1), pump, au)
            assert code(r) == protocol.E_AUTH_NOKEYS and "no keys" in r["error"]["message"]
    assert pump.applied == [] and not au.locked()  # not an attack: no lock-out
    assert all(e[1]["code"] == protocol.E_AUTH_NOKEYS for e in events)


def test_role_without_key_refused():
    au, pump, _, _, _ = make(keys={auth.CLINICIAN: KEYS[auth.CLINICIAN]})
    assert code(send(signed("patient_bolus", auth.PATIENT, 1), pump, au)) == protocol.E_AUTH_NOKEYS
    assert send(signed("bolus", auth.CLINICIAN, 1), pump, au)["ok"]


def test_missing_auth_fields():
    au, pump, _, _, events = make(quiet_ms=0)
    key = KEYS[auth.CLINICIAN]
    for line in (frame("bolus", req_id=3),
                 frame("bolus", None, 5, req_id=3, key=key),
                 frame("bolus", auth.CLINICIAN, None, req_id=3, key=key),
                 frame("bolus", auth.CLINICIAN, 5, req_id=3)):
        r = send(line, pump, au)
        assert r["id"] == 3 and code(r) == protocol.E_AUTH_MISSING, line
    assert pump.applied == [] and len(events) == 4


def test_forged_mac_refused_and_reported():
    au, pump, _, counters, events = make()
    good = signed("bolus", auth.CLINICIAN, 1, args={"volume_ul": 50})
    forged = good[:-64] + (b"0" * 64)
    assert code(send(forged, pump, au)) == protocol.E_AUTH_MAC
    tampered = good.replace(b"50", b"99")  # body changed, MAC kept
    assert code(send(tampered, pump, au)) == protocol.E_AUTH_MAC
    other_key = frame("bolus", auth.CLINICIAN, 1, key=KEYS[auth.PATIENT])  # signed with the wrong role's key
    assert code(send(other_key, pump, au)) == protocol.E_AUTH_MAC
    assert pump.applied == [] and len(counters.saves) == 1  # the fingerprints saved at first boot
    assert [e[1]["code"] for e in events] == [protocol.E_AUTH_MAC] * 3
    assert events[0][1]["op"] == "bolus" and events[0][1]["role"] == auth.CLINICIAN
    assert send(good, pump, au)["ok"]  # the forgeries did not burn the counter


def test_unknown_role():
    au, pump, _, _, _ = make()
    r = send(frame("bolus", "admin", 1, key=KEYS[auth.CLINICIAN]), pump, au)
    assert code(r) == protocol.E_AUTH_ROLE and pump.applied == []


def test_replayed_counter_refused():
    au, pump, _, _, events = make()
    assert send(signed("bolus", auth.CLINICIAN, 7, req_id=1), pump, au)["ok"]
    # same counter, new id (so not a retry): a replay
    assert code(send(signed("bolus", auth.CLINICIAN, 7, req_id=2), pump, au)) == protocol.E_AUTH_REPLAY
    assert len(pump.applied) == 1 and events[-1][1]["code"] == protocol.E_AUTH_REPLAY


def test_reordered_counters_only_forward():
    au, pump, _, _, _ = make()
    assert send(signed("bolus", auth.CLINICIAN, 10, req_id=1), pump, au)["ok"]
    assert code(send(signed("ack", auth.CLINICIAN, 9, req_id=2), pump, au)) == protocol.E_AUTH_REPLAY
    assert code(send(signed("ack", auth.CLINICIAN, 0, req_id=3), pump, au)) == protocol.E_AUTH_REPLAY
    assert send(signed("ack", auth.CLINICIAN, 11, req_id=4), pump, au)["ok"]
    assert send(signed("ack", auth.CLINICIAN, 500, req_id=5), pump, au)["ok"]  # gaps are fine
    # counters are per role
    assert send(signed("patient_bolus", auth.PATIENT, 1, req_id=6), pump, au)["ok"]
    assert [a[0] for a in pump.applied] == ["bolus", "ack", "ack", "patient_bolus"]


def test_counter_saved_before_the_change_and_survives_reboot():
    counters = FakeCounters()
    au, pump, _, _, _ = make(counters=counters)
    assert send(signed("bolus", auth.CLINICIAN, 3), pump, au)["ok"]
    assert [d[auth.CLINICIAN] for d in pump.ctr_saved_before_apply] == [3]
    # reboot: a fresh authenticator over the same store
    au2, pump2, _, _, _ = make(counters=counters)
    assert au2.last_counters() == {auth.CLINICIAN: 3}
    assert code(send(signed("bolus", auth.CLINICIAN, 3, req_id=9), pump2, au2)) == protocol.E_AUTH_REPLAY
    assert send(signed("bolus", auth.CLINICIAN, 4, req_id=10), pump2, au2)["ok"]


def test_counter_store_failures_refuse_changes():
    au, pump, _, _, events = make(counters=FakeCounters(fail_load=True))
    assert events[0][0] == auth.EV_STATE
    assert code(send(signed("bolus", auth.CLINICIAN, 1), pump, au)) == protocol.E_AUTH_STATE
    assert send(frame("status"), pump, au)["ok"]
    au, pump, _, counters, events = make(counters=FakeCounters({"clinician": "x"}))
    assert code(send(signed("bolus", auth.CLINICIAN, 1), pump, au)) == protocol.E_AUTH_STATE
    au, pump, _, counters, events = make()
    counters.fail_save = True
    assert code(send(signed("bolus", auth.CLINICIAN, 1), pump, au)) == protocol.E_AUTH_STATE
    assert pump.applied == [] and events[-1][0] == auth.EV_STATE
    counters.fail_save = False
    assert code(send(signed("bolus", auth.CLINICIAN, 2), pump, au)) == protocol.E_AUTH_STATE  # stays refused


NEW_CLINICIAN = bytes((i * 29 + 3) % 256 for i in range(32))


def test_new_key_restarts_only_that_roles_counter():
    au, pump, _, counters, events = make()
    old = signed("bolus", auth.CLINICIAN, 5)
    assert send(old, pump, au)["ok"]
    assert send(signed("patient_bolus", auth.PATIENT, 7), pump, au)["ok"]
    au.set_keys({auth.CLINICIAN: NEW_CLINICIAN, auth.PATIENT: KEYS[auth.PATIENT]})
    assert au.last_counters() == {auth.CLINICIAN: 0, auth.PATIENT: 7}
    assert counters.data["kid"][auth.CLINICIAN] == auth.key_id(NEW_CLINICIAN)
    assert events[-1] == (auth.EV_KEYS, {"roles": [auth.CLINICIAN, auth.PATIENT], "changed": [auth.CLINICIAN],
                                      "counters_reset": [auth.CLINICIAN]})
    assert code(send(old, pump, au)) == protocol.E_AUTH_MAC  # not even the retry cache answers
    assert send(frame("bolus", auth.CLINICIAN, 1, req_id=2, key=NEW_CLINICIAN), pump, au)["ok"]
    # the patient key did not change: its old frames stay replays
    assert code(send(signed("patient_bolus", auth.PATIENT, 7, req_id=3), pump, au)) == protocol.E_AUTH_REPLAY
    assert code(send(signed("keys", auth.SERVICE, 1), pump, au)) == protocol.E_AUTH_NOKEYS  # service key gone


def test_key_file_changed_between_boots_is_seen():
    counters = FakeCounters()
    au, pump, _, _, _ = make(counters=counters)
    assert send(signed("bolus", auth.CLINICIAN, 9), pump, au)["ok"]
    assert send(signed("patient_bolus", auth.PATIENT, 4), pump, au)["ok"]
    au, pump, _, _, events = make(counters=counters)  # same keys: nothing reset, nothing saved
    assert au.last_counters() == {auth.CLINICIAN: 9, auth.PATIENT: 4} and events == []
    keys = dict(KEYS)
    keys[auth.CLINICIAN] = NEW_CLINICIAN  # a new key file was flashed
    au, pump, _, _, events = make(keys=keys, counters=counters)
    assert au.last_counters() == {auth.CLINICIAN: 0, auth.PATIENT: 4}
    assert events[0][0] == auth.EV_KEYS and events[0][1]["counters_reset"] == [auth.CLINICIAN]
    assert send(frame("bolus", auth.CLINICIAN, 1, key=NEW_CLINICIAN), pump, au)["ok"]


def test_counters_without_fingerprints_are_kept():
    au, _, _, _, _ = make(counters=FakeCounters({auth.CLINICIAN: 40}))
    assert au.last_counters()[auth.CLINICIAN] == 40


# -- failed attempts: a growing, capped delay per role ------------------------------------------


def _bad(ctr=1, req_id=1):
    return signed("bolus", auth.CLINICIAN, ctr, req_id=req_id)[:-64] + b"f" * 64


def test_wrong_macs_hold_the_role_back_for_a_doubling_capped_delay():
    au, pump, clock, _, events = make()
    for _ in range(3):  # the free ones
        r = send(_bad(), pump, au)
        assert code(r) == protocol.E_AUTH_MAC and "held back" not in r["error"]["message"]
        assert not au.locked()
    want = [1000, 2000, 4000, 8000, 16000, 30000, 30000]
    for i, hold in enumerate(want):
        r = send(_bad(), pump, au)
        assert code(r) == protocol.E_AUTH_MAC and "held back for %d s" % (hold // 1000) in r["error"]["message"]
        assert events[-1] == (auth.EV_LOCKOUT, {"role": auth.CLINICIAN, "failures": 4 + i, "delay_ms": hold})
        assert au.held_ms(auth.CLINICIAN) == hold
        good = signed("bolus", auth.CLINICIAN, 1, req_id=2)
        r = send(good, pump, au)  # the key holder waits too: the MAC is not checked while held
        assert code(r) == protocol.E_AUTH_LOCKED and "reads work" in r["error"]["message"]
        assert send(frame("status"), pump, au)["ok"]  # reads still work
        assert send(signed("patient_bolus", auth.PATIENT, 1 + i, req_id=3), pump, au)["ok"]  # other roles too
        clock.advance(hold - 1)  # crosses the 2**30 tick wrap on the way (FakeClock starts near it)
        assert code(send(good, pump, au)) == protocol.E_AUTH_LOCKED
        clock.advance(1)
        assert not au.held_ms(auth.CLINICIAN)
    assert send(signed("bolus", auth.CLINICIAN, 1, req_id=2), pump, au)["ok"]  # at most 30 s, then in
    assert send(_bad(), pump, au)["error"]["message"] == "MAC does not match"  # a good MAC cleared it


def test_unsigned_and_malformed_changes_never_hold_anyone_back():
    """Issue 13: five unsigned requests from anything on the link locked the clinician out for 5 min."""
    au, pump, clock, _, events = make()
    for i in range(50):
        send(frame("bolus", req_id=i), pump, au)  # unsigned
        send(frame("bolus", "admin", 9, key=KEYS[auth.CLINICIAN]), pump, au)  # unknown role
        send(signed("keys", auth.CLINICIAN, 9), pump, au)  # forbidden
        send(b'{"id": 1, "op": "bolus", "role": "clinician", "ctr": 3}\tzz', pump, au)  # bad MAC field
    assert not au.locked()
    assert send(signed("bolus", auth.CLINICIAN, 1), pump, au)["ok"]
    send(signed("bolus", auth.CLINICIAN, 1, req_id=7), pump, au)  # a replayed counter does not count either
    for _ in range(3):
        send(_bad(), pump, au)
    assert not au.locked()


def test_uncounted_refusals_are_logged_at_most_once_per_10_s():
    au, pump, clock, _, events = make()
    for i in range(100):
        send(frame("bolus", req_id=i), pump, au)
        clock.advance(100)  # 10 s in all
    fails = [e[1] for e in events if e[0] == auth.EV_FAIL]
    assert len(fails) == 1 and fails[0]["suppressed"] == 0
    send(frame("bolus", req_id=200), pump, au)
    fails = [e[1] for e in events if e[0] == auth.EV_FAIL]
    assert len(fails) == 2 and fails[1]["suppressed"] == 99
    for _ in range(5):
        send(_bad(), pump, au)  # wrong MACs are always logged
        clock.advance(30000)  # (past each hold: a held role's MAC is not even checked)
    assert len([e for e in events if e[0] == auth.EV_FAIL and e[1]["code"] == protocol.E_AUTH_MAC]) == 5


def test_hold_survives_the_tick_half_period():
    au, pump, clock, _, _ = make(free_failures=0, delay_ms=30000, delay_max_ms=30000)
    send(_bad(), pump, au)
    assert au.locked()
    clock.advance((1 << 29) + 1000)  # untouched for > 6 days: ticks_diff alone would say "future"
    assert not au.locked()
    assert send(signed("bolus", auth.CLINICIAN, 1), pump, au)["ok"]


# -- resends ---------------------------------------------------------------------------------------


def test_resend_is_answered_duplicate_with_the_first_outcome_and_applied_once():
    """Issue 13: a resent accepted change was answered ok although nothing was applied."""
    au, pump, _, counters, events = make()
    line = signed("bolus", auth.CLINICIAN, 1, req_id=42, args={"volume_ul": 50})
    first = json.loads(protocol.dispatch(line, pump.ops, au))
    assert first["ok"]
    for _ in range(3):
        r = send(line, pump, au)
        assert not r["ok"] and r["id"] == 42
        assert r["error"]["code"] == protocol.E_DUPLICATE and r["error"]["of"] == 42 and r["error"]["outcome"] == "ok"
        assert "not applied again" in r["error"]["message"]
    assert len(pump.applied) == 1 and len(counters.saves) == 2  # boot + one change
    dups = [e for e in events if e[0] == auth.EV_DUPLICATE]
    assert dups == [(auth.EV_DUPLICATE, {"role": auth.CLINICIAN, "op": "bolus", "id": 42, "outcome": "ok"})] * 3


def test_resend_of_a_refused_handler_is_not_run_again():
    au, pump, _, _, _ = make()
    calls = []

    def picky(args):
        calls.append(args)
        raise protocol.ProtocolError(protocol.E_ARGS, "volume too large")

    pump.ops["bolus"] = (picky, protocol.CHANGE)
    line = signed("bolus", auth.CLINICIAN, 1)
    assert code(json.loads(protocol.dispatch(line, pump.ops, au))) == protocol.E_ARGS
    r = send(line, pump, au)
    assert code(r) == protocol.E_DUPLICATE and r["error"]["outcome"] == protocol.E_ARGS and len(calls) == 1


def test_resend_memory_is_bounded():
    au, pump, _, _, _ = make(cache_size=2)
    lines = [signed("ack", auth.CLINICIAN, c, req_id=c) for c in (1, 2, 3)]
    for x in lines:
        assert send(x, pump, au)["ok"]
    assert code(send(lines[2], pump, au)) == protocol.E_DUPLICATE
    assert code(send(lines[1], pump, au)) == protocol.E_DUPLICATE
    assert code(send(lines[0], pump, au)) == protocol.E_AUTH_REPLAY  # forgotten: a replayed counter
    assert len(pump.applied) == 3


def test_event_callback_failure_does_not_change_the_outcome():
    def boom(kind, info):
        raise RuntimeError("log full")

    au = auth.Authenticator(FakeClock(), FakeCounters(), keys=KEYS, on_event=boom)
    pump = Pump()
    assert code(send(signed("bolus", auth.CLINICIAN, 1)[:-64] + b"0" * 64, pump, au)) == protocol.E_AUTH_MAC
    assert send(signed("bolus", auth.CLINICIAN, 1), pump, au)["ok"]


def test_file_counters_round_trip():
    import os

    path = "/tmp/itpump_test_ctr_%d.json" % (id(path_holder) % 100000)
    fc = auth.FileCounters(path)
    try:
        assert fc.load() == {}
        fc.save({auth.CLINICIAN: 12})
        assert fc.load() == {auth.CLINICIAN: 12}
        with open(path, "w") as f:
            f.write("{garbage")
        raises(ValueError, fc.load)
        au = auth.Authenticator(FakeClock(), fc, keys=KEYS)
        assert au.last_counters() is None  # corrupt counters: changes refused
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


path_holder = object()
