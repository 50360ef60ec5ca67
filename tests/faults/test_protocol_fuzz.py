"""Fuzzing the link: protocol.dispatch + auth against random bytes and mutated, signed frames. Dispatch
never raises; every reply is one well-formed JSON line; every reject carries a known error code and a
message and changes nothing (pump state, and for refusals before the handler the counters too); only
validly signed, permitted, fresh frames change state. bench/fuzz.py runs 100k+."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzrig import CHANGES, CODES, KEYS, READS, FakeOps, authenticator
from itpump import auth, protocol

# Kept to a few seconds in make test: bench/fuzz.py is the long run.


def budget(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rig(free_failures=10**6):
    au, counters, _ = authenticator(free_failures)
    return au, FakeOps(), counters


def body_of(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def signed(obj, key=None):
    b = body_of(obj)
    role = obj.get("role")
    if key is None:
        key = KEYS[role] if isinstance(role, str) and role in KEYS else KEYS[auth.CLINICIAN]
    return b + b"\t" + auth.hmac_hex(key, b).encode()


def check(line, au, pump, counters):
    """Dispatch once; assert the invariants; return the decoded reply."""
    before_changes = list(pump.changes)
    before_ctr = dict(counters.data)
    out = protocol.dispatch(line, pump.ops, au)
    assert isinstance(out, bytes) and out.endswith(b"\n") and out.count(b"\n") == 1
    r = json.loads(out)
    assert isinstance(r, dict) and "id" in r and r.get("ok") in (True, False)
    assert r["id"] is None or (isinstance(r["id"], int) and 0 <= r["id"] <= protocol.MAX_ID)
    if r["ok"]:
        assert set(r) == {"id", "ok", "result"}
        return r
    code = r["error"]["code"]
    extra = {"of", "outcome"} if code == protocol.E_DUPLICATE else set()  # a resend: which request, what it did
    assert set(r) == {"id", "ok", "error"} and set(r["error"]) == {"code", "message"} | extra
    assert code in CODES and code != protocol.E_INTERNAL, r
    assert isinstance(r["error"]["message"], str) and r["error"]["message"]
    assert pump.changes == before_changes, "state changed on a reject"
    if code != protocol.E_ARGS:  # ARGS comes from the handler, after the counter was (rightly) consumed
        assert counters.data == before_ctr, "counter moved on a reject"
    return r


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                      st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), c, max_size=4)),
                          max_leaves=12)


@st.composite
def requests(draw):
    op = draw(st.sampled_from(CHANGES + READS + ["nope", ""]) | st.text(max_size=40))
    obj = {"id": draw(st.integers(min_value=0, max_value=protocol.MAX_ID))}
    obj["op"] = op
    if draw(st.booleans()):
        obj["args"] = draw(st.dictionaries(st.sampled_from(["volume_ul", "note", "x"]),
                                           st.integers(min_value=-5, max_value=2000) | st.text(max_size=5),
                                           max_size=2))
    if draw(st.integers(0, 9)):
        obj["role"] = draw(st.sampled_from(list(auth.ROLES) + ["admin"]))
        obj["ctr"] = draw(st.integers(min_value=0, max_value=50))
    return obj


@st.composite
def valid_requests(draw):
    """Frames the board accepts as they are (so a mutation that still passes is a finding)."""
    role = draw(st.sampled_from(auth.ROLES))
    obj = {"id": draw(st.integers(min_value=0, max_value=protocol.MAX_ID)),
           "op": draw(st.sampled_from(auth.PERMISSIONS[role]))}
    if draw(st.booleans()):
        obj["args"] = {"volume_ul": draw(st.integers(1, 1000))}
    obj["role"] = role
    obj["ctr"] = draw(st.integers(min_value=1, max_value=protocol.MAX_CTR))
    return obj


@budget(200)
@given(st.binary(max_size=2200))
def test_random_bytes(data):
    au, pump, counters = rig()
    r = check(data, au, pump, counters)
    assert pump.changes == [] or r["ok"]
    assert pump.changes == []  # nothing random carries a valid MAC


@budget(60)
@given(st.lists(requests(), min_size=1, max_size=6), st.data())
def test_signed_sequences_change_state_only_when_allowed(reqs, data):
    au, pump, counters = rig()
    last = {}
    for obj in reqs:
        line = signed(obj) if data.draw(st.integers(0, 5)) else body_of(obj)
        n = len(pump.changes)
        r = check(line, au, pump, counters)
        changed = len(pump.changes) > n
        if changed:
            role = obj.get("role")
            assert r["ok"] and b"\t" in line and obj["op"] in auth.PERMISSIONS[role]
            assert obj["ctr"] > last.get(role, 0)
            last[role] = obj["ctr"]


MUTATIONS = ("flip", "truncate", "swap", "deep", "huge", "unicode", "dup", "ctl")


@budget(300)
@given(requests() | valid_requests(), st.sampled_from(MUTATIONS), st.data())
def test_mutated_frames(obj, how, data):
    au, pump, counters = rig()
    resign = data.draw(st.booleans())
    if how == "flip":
        line = bytearray(signed(obj))
        i = data.draw(st.integers(0, len(line) - 1))
        line[i] ^= 1 << data.draw(st.integers(0, 7))
        line = bytes(line)
    elif how == "truncate":
        line = signed(obj)
        line = line[: data.draw(st.integers(0, len(line) - 1))]
    elif how == "swap":
        field = data.draw(st.sampled_from(["id", "op", "args", "role", "ctr", "mac", "zz"]))
        obj[field] = data.draw(json_value)
        line = signed(obj) if resign else body_of(obj) + b"\t" + b"a" * 64
    elif how == "deep":
        d = data.draw(st.integers(1, 300))
        open_, close = data.draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        b = body_of(obj)[:-1] + b',"args":' + (open_ * d + "1" + close * d).encode() + b"}"
        line = b + b"\t" + auth.hmac_hex(KEYS[auth.CLINICIAN], b).encode()
    elif how == "huge":
        field = data.draw(st.sampled_from(["id", "ctr", "volume_ul"]))
        v = data.draw(st.sampled_from([10**400, -(10**400), 2**31, 2**63, 1e308, -1e308, 1.5]))
        if field == "volume_ul":
            obj["args"] = {"volume_ul": v}
        else:
            obj[field] = v
        line = signed(obj)
        if data.draw(st.booleans()):  # literal overflow forms json.dumps never writes
            line = line.replace(b'"id":', b'"id":1e999999,"x":', 1)
    elif how == "unicode":
        s = data.draw(st.text(min_size=1, max_size=40))
        obj[data.draw(st.sampled_from(["op", "role"]))] = s
        obj.setdefault("args", {})["note"] = s
        b = json.dumps(obj, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
        line = b + b"\t" + auth.hmac_hex(KEYS[auth.CLINICIAN], b).encode()
    elif how == "dup":  # duplicate keys: the signed bytes are what the board parses (last one wins)
        b = body_of(obj)[:-1] + b',"op":"keys","role":"patient"}'
        line = b + b"\t" + auth.hmac_hex(KEYS[auth.PATIENT], b).encode()
        r = check(line, au, pump, counters)
        assert not r["ok"] and pump.changes == []  # patient may not install keys
        return
    else:  # control bytes
        line = bytearray(signed(obj))
        i = data.draw(st.integers(0, len(line)))
        line[i:i] = data.draw(st.sampled_from([b"\t", b"\r", b"\x00", b"\t\t", b"\xc3", b"\\"]))
        line = bytes(line)
    check(line, au, pump, counters)
    if pump.changes and how in ("flip", "truncate", "swap", "ctl") and not (how == "swap" and resign):
        # unsigned tampering got through: only a MAC digit's case may differ (same MAC value)
        assert line.split(b"\t")[0] == body_of(obj), line


@budget(50)
@given(st.lists(st.binary(max_size=200) | requests().map(signed), max_size=20))
def test_lockout_never_lets_a_forgery_through(lines):
    au, pump, counters = rig(free_failures=3)
    for line in lines:
        check(line, au, pump, counters)


def test_fuzz_invariants_can_fail():
    """The checker itself catches a state change on a reject (a checker that cannot fail proves nothing)."""
    au, pump, counters = rig()

    def sneaky(args):
        pump.changes.append(("sneaky", {}))
        raise protocol.ProtocolError(protocol.E_ARGS, "no")

    pump.ops["bolus"] = (sneaky, protocol.CHANGE)
    try:
        check(signed({"id": 1, "op": "bolus", "role": "clinician", "ctr": 1}), au, pump, counters)
    except AssertionError as e:
        assert "state changed" in str(e)
    else:
        raise AssertionError("checker missed a state change on a reject")


@budget(20)
@given(valid_requests())
def test_valid_requests_are_accepted(obj):
    au, pump, counters = rig()
    assert check(signed(obj), au, pump, counters)["ok"] and len(pump.changes) == 1


def test_valid_signed_frame_is_accepted():
    au, pump, counters = rig()
    r = check(signed({"id": 1, "op": "bolus", "args": {"volume_ul": 5}, "role": "clinician", "ctr": 1}),
              au, pump, counters)
    assert r["ok"] and pump.changes == [("bolus", {"volume_ul": 5})]


def test_bench_fuzz_short_run_is_clean():
    """bench/fuzz.py (the 100k run) stays runnable: a short run finds nothing and applies valid frames."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_fuzz", Path(__file__).resolve().parents[2] / "bench" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stats, codes, kinds, first, _ = mod.run(600, seed=3)
    assert stats["crashes"] == 0 and stats["state changes on rejects"] == 0, first
    assert stats["forgeries accepted"] == 0 and stats["changes applied"] > 0
    assert len(kinds) == 13 and codes[protocol.E_AUTH_MAC] + codes[protocol.E_FRAME] > 0
