"""Long fuzz run of the link (CPython): protocol.dispatch + auth against random and mutated frames; prints
crashes, state changes on rejects and forgeries accepted, exit 1 if any (docs/figures.md). The quick
version runs in the suite: tests/faults/test_protocol_fuzz.py."""

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in ("firmware", "tests/firmware", "tests/faults"):
    sys.path.insert(0, str(ROOT / _p))

from fuzzrig import CODES, KEYS, READS, FakeOps, authenticator  # noqa: E402
from itpump import auth, protocol  # noqa: E402

RESET_EVERY = 2000  # fresh board state now and then (lock-outs, counters near the top)


class Rig(FakeOps):
    def __init__(self, free_failures):
        super().__init__()
        self.auth, self.counters, self.clock = authenticator(free_failures)
        self.ctr = {r: 0 for r in auth.ROLES}


def body_of(obj, rnd):
    if rnd.random() < 0.3:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(obj, separators=(",", ":")).encode()


SIGNED = set()  # bodies signed with a real key in the current frame: anything else applied is a forgery


def sign(body, role):
    key = KEYS[role] if isinstance(role, str) and role in KEYS else KEYS[auth.CLINICIAN]
    SIGNED.add(body)
    return body + b"\t" + auth.hmac_hex(key, body).encode()


def rand_text(rnd, n):
    pools = ("abcxyz_", "\u00e9\u4e2d\u0000\t\"\\\n", "\ud800\udfff", "\U0001f600")
    return "".join(rnd.choice(rnd.choice(pools)) for _ in range(n))


def rand_value(rnd, depth=0):
    k = rnd.randrange(9 if depth < 3 else 6)
    if k == 0:
        return None
    if k == 1:
        return rnd.random() < 0.5
    if k == 2:
        return rnd.choice([0, -1, 1, 2**30, 2**31, 2**63, 10**400, -(10**400)])
    if k == 3:
        return rnd.choice([0.5, 1e308, -1e-308, float("inf")]) if rnd.random() < 0.9 else float("nan")
    if k in (4, 5):
        return rand_text(rnd, rnd.randrange(12))
    if k in (6, 7):
        return [rand_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {rand_text(rnd, rnd.randrange(6)): rand_value(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def valid_obj(rig, rnd):
    role = rnd.choice(auth.ROLES)
    rig.ctr[role] += rnd.randrange(1, 4)
    obj = {"id": rnd.randrange(protocol.MAX_ID + 1), "op": rnd.choice(auth.PERMISSIONS[role])}
    if rnd.random() < 0.5:
        obj["args"] = {"volume_ul": rnd.randrange(1, 1001)}
    obj["role"] = role
    obj["ctr"] = rig.ctr[role]
    return obj


def frame(rig, rnd):
    """(kind, line). Bodies signed on the way are in SIGNED; tampering after signing is not."""
    kind = rnd.choice(("bytes", "valid", "flip", "truncate", "swap", "deep", "huge", "unicode", "dup",
                       "ctl", "splice", "read", "replay"))
    if kind == "bytes":
        return kind, bytes(rnd.randrange(256) for _ in range(rnd.randrange(300)))
    obj = valid_obj(rig, rnd)
    good = sign(body_of(obj, rnd), obj["role"])
    if kind == "valid":
        return kind, good
    if kind == "read":
        return kind, body_of({"id": obj["id"], "op": rnd.choice(READS)}, rnd)
    if kind == "replay":
        obj["ctr"] = rnd.randrange(0, rig.ctr[obj["role"]] + 1)
        return kind, sign(body_of(obj, rnd), obj["role"])
    if kind == "flip":
        b = bytearray(good)
        for _ in range(rnd.randrange(1, 4)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, good[: rnd.randrange(len(good))]
    if kind == "ctl":
        b = bytearray(good)
        i = rnd.randrange(len(b) + 1)
        b[i:i] = rnd.choice([b"\t", b"\r", b"\x00", b"\xc3", b"\\", b"\t\t", b"\xff\xfe"])
        return kind, bytes(b)
    if kind == "splice":
        other = sign(body_of(valid_obj(rig, rnd), rnd), auth.CLINICIAN)
        i, j = rnd.randrange(len(good)), rnd.randrange(len(other))
        return kind, good[:i] + other[j:]
    if kind == "swap":
        obj[rnd.choice(["id", "op", "args", "role", "ctr", "mac", "zz"])] = rand_value(rnd)
        resign = rnd.random() < 0.5
        b = body_of(obj, rnd)
        return kind, (sign(b, obj.get("role")) if resign else b + b"\t" + b"ab" * 32)
    if kind == "deep":
        d = rnd.randrange(1, 3000)
        o, c = rnd.choice([("[", "]"), ('{"a":', "}")])
        b = body_of(obj, rnd)[:-1] + b',"args":' + (o * d + "1" + c * d).encode() + b"}"
        return kind, sign(b, obj["role"])
    if kind == "huge":
        field = rnd.choice(["id", "ctr", "args"])
        v = rnd.choice([10**400, -(10**400), 2**31, 2**63, 1e308, 1.5, -1])
        if field == "args":
            obj["args"] = {"volume_ul": v}
        else:
            obj[field] = v
        b = body_of(obj, rnd)
        if rnd.random() < 0.3:
            b = b.replace(b'"id":', b'"id":1e999999,"x":', 1)
        return kind, sign(b, obj["role"])
    if kind == "unicode":
        obj[rnd.choice(["op", "role"])] = rand_text(rnd, rnd.randrange(1, 40))
        obj.setdefault("args", {})["note"] = rand_text(rnd, rnd.randrange(40))
        return kind, sign(body_of(obj, rnd), obj["role"])
    # dup: duplicate keys, signed by a patient who may not install keys
    b = body_of(obj, rnd)[:-1] + b',"op":"keys","role":"patient"}'
    return kind, sign(b, auth.PATIENT)


def run(n, seed):
    rnd = random.Random(seed)
    stats = Counter()
    codes = Counter()
    kinds = Counter()
    first = []
    rig = Rig(free_failures=50)
    t0 = time.perf_counter()
    for i in range(n):
        if i % RESET_EVERY == 0:
            rig = Rig(free_failures=rnd.choice([3, 50, 10**6]))
        rig.clock.advance(rnd.randrange(0, 200))
        SIGNED.clear()
        kind, line = frame(rig, rnd)
        kinds[kind] += 1
        before = len(rig.changes)
        ctr_before = dict(rig.counters.data)
        try:
            out = protocol.dispatch(line, rig.ops, rig.auth)
            r = json.loads(out)
            if not out.endswith(b"\n") or out.count(b"\n") != 1 or not isinstance(r, dict) or \
                    r.get("ok") not in (True, False):
                raise ValueError(f"malformed reply {out[:80]!r}")
            if not r["ok"]:
                code = r["error"]["code"]
                if code not in CODES or code == protocol.E_INTERNAL or not r["error"]["message"]:
                    raise ValueError(f"bad error {r!r}")
        except Exception as e:
            stats["crashes"] += 1
            if len(first) < 5:
                first.append((kind, line[:120], repr(e)))
            continue
        changed = len(rig.changes) > before
        if r["ok"]:
            stats["accepted"] += 1
            if changed and line.split(b"\t")[0] not in SIGNED:
                stats["forgeries accepted"] += 1  # applied, yet no key ever signed these bytes
        else:
            codes[r["error"]["code"]] += 1
            if changed or (r["error"]["code"] != protocol.E_ARGS and rig.counters.data != ctr_before):
                stats["state changes on rejects"] += 1
        if changed:
            stats["changes applied"] += 1
    dt = time.perf_counter() - t0
    return stats, codes, kinds, first, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=100_000, help="frames to fuzz (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    a = ap.parse_args()
    stats, codes, kinds, first, dt = run(a.frames, a.seed)
    print(f"frames fuzzed:            {a.frames:,} (seed {a.seed}, {dt:.1f} s, "
          f"{a.frames / dt:,.0f} frames/s, CPython)")
    print(f"crashes:                  {stats['crashes']}")
    print(f"state changes on rejects: {stats['state changes on rejects']}")
    print(f"forgeries accepted:       {stats['forgeries accepted']}")
    print(f"accepted / applied:       {stats['accepted']:,} / {stats['changes applied']:,}")
    print("rejects by code:          " + ", ".join(f"{k} {v:,}" for k, v in codes.most_common()))
    print("frames by kind:           " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))
    for f in first:
        print("  crash:", f)
    bad = stats["crashes"] + stats["state changes on rejects"] + stats["forgeries accepted"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
