"""Fuzz the link of a running pump on the virtual board (real MicroPython, real pty, real keys) with
bench/fuzz.py's frames, each followed by a `ping` sentinel; exit 1 on any crash or any state change on
a reject (docs/figures.md: what counts as either)."""

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz  # noqa: E402

from common import ROOT, print_table, tool, virtual_board, wait_status  # noqa: E402
from itpump import auth, protocol  # noqa: E402
from pumpctl import (
    keys,  # noqa: E402
    prescription,  # noqa: E402
)
from pumpctl.link import Link  # noqa: E402
from pumpctl.mpr import Device  # noqa: E402

STATE_KEYS = ("therapy", "reservoir_drug", "reservoir_conc_ug_per_ml", "pl_per_step", "halt", "alarms",
              "keys", "boot_count", "reset_cause", "device_id")
SENTINEL_TIMEOUT_S = 5.0


def sentinel(n: int) -> bytes:
    return json.dumps({"id": n, "op": "ping"}).encode() + b"\n"


class Board:
    def __init__(self, link: Link):
        self.link = link
        self.sid = 900000

    def exchange(self, data: bytes) -> list[dict]:
        """Send data, then a ping sentinel; every reply line before the sentinel's, parsed."""
        self.sid = 900000 + (self.sid + 1) % 90000
        self.link.write(data + b"\n" + sentinel(self.sid))
        out = []
        deadline = time.monotonic() + SENTINEL_TIMEOUT_S
        while True:
            line = self.link.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                tail = self.link.pending_text()
                raise RuntimeError(f"no answer to the sentinel ping{' (REPL!)' if b'>>>' in tail else ''}: "
                                   f"{tail[-80:]!r}")
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise RuntimeError(f"reply is not an object: {line[:80]!r}")
            if msg.get("id") == self.sid and msg.get("ok") is True:
                return out
            out.append(msg)

    def request(self, line: bytes) -> dict:
        replies = [m for m in self.exchange(line) if "event" not in m]
        if len(replies) != 1:
            raise RuntimeError(f"expected one reply, got {replies!r}")
        return replies[0]

    def state(self) -> dict:
        st = self.request(b'{"id":1,"op":"status"}')
        if not st.get("ok"):
            raise RuntimeError(f"status failed: {st!r}")
        return {k: st["result"].get(k) for k in STATE_KEYS}


def setup(port: str, keys_root: Path) -> keys.Keystore:
    st = wait_status(port)
    ks = keys.provision(st["device_id"], root=keys_root)
    with Device(port) as dev:
        dev.write_file("/keys.json", ks.device_file())
    tool("pumpctl", "restart", "--port", port)
    rx = prescription.load(ROOT / "examples" / "morphine_continuous.toml")
    with Link(port) as link:
        b = Board(link)
        link.discard_input()
        fill = {"drug": rx["drug"], "conc_ug_per_ml": rx["conc_ug_per_ml"], "added_nl": 20000000, "removed_nl": 0}
        for op, args in (("refill", fill), ("program", {"rx": rx})):
            r = b.request(ks.signed_line(1, op, args, auth.CLINICIAN))
            if not r.get("ok"):
                raise SystemExit(f"{op} refused: {r}")
    return ks


def run(port: str, ks: keys.Keystore, n: int, seed: int):
    rnd = random.Random(seed)
    fuzz.KEYS.clear()
    fuzz.KEYS.update(ks.keys)

    class Rig:  # counters as the board knows them: the keystore's, continued by the generator
        ctr = {r: ks.counters().get(r, 0) for r in auth.ROLES}

    def valid_obj(rig, rnd):
        role = rnd.choice(auth.ROLES)
        rig.ctr[role] += rnd.randrange(1, 4)
        ops = [op for op in auth.PERMISSIONS[role] if op != "service"] or ["ping"]
        obj = {"id": rnd.randrange(protocol.MAX_ID + 1), "op": rnd.choice(ops)}
        if rnd.random() < 0.5:
            obj["args"] = {"volume_ul": rnd.randrange(1, 1001)}
        obj["role"] = role
        obj["ctr"] = rig.ctr[role]
        return obj

    fuzz.valid_obj = valid_obj
    rig = Rig()
    stats: Counter = Counter()
    codes: Counter = Counter()
    kinds: Counter = Counter()
    first: list = []
    with Link(port) as link:
        b = Board(link)
        link.discard_input()
        before = b.state()
        t0 = time.perf_counter()
        sent = 0
        for _ in range(n):
            sent += 1
            fuzz.SIGNED.clear()
            kind, line = fuzz.frame(rig, rnd)
            kinds[kind] += 1
            try:
                replies = b.exchange(line)
                events = [m for m in replies if "event" in m]
                answers = [m for m in replies if "event" not in m]
                if any(e.get("event") == "boot" for e in events):
                    raise RuntimeError("the board restarted")
                accepted = False
                for m in answers:
                    if m.get("ok") is True:
                        accepted = True
                        stats["accepted"] += 1
                    elif m.get("ok") is False:
                        code = m["error"]["code"]
                        codes[code] += 1
                        if code == protocol.E_INTERNAL or not m["error"].get("message"):
                            raise RuntimeError(f"bad error reply {m!r}")
                    else:
                        raise RuntimeError(f"malformed reply {m!r}")
                after = b.state()
            except Exception as e:  # noqa: BLE001 - every failure is a finding, reported below
                stats["crashes"] += 1
                if len(first) < 5:
                    first.append((kind, line[:100], repr(e)[:200]))
                link.discard_input()
                time.sleep(1)
                try:
                    after = b.state()
                except Exception:  # noqa: BLE001
                    break
            else:
                if after != before and not accepted:
                    stats["state changes on rejects"] += 1
                    if len(first) < 5:
                        diff = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
                        first.append((kind, line[:100], f"state changed: {diff}"))
            if after["boot_count"] != before["boot_count"] or after["reset_cause"] != before["reset_cause"]:
                stats["crashes"] += 1
                first.append((kind, line[:100], "boot_count / reset cause changed"))
            before = after
        dt = time.perf_counter() - t0
    return stats, codes, kinds, first, dt, sent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=5000, help="frames to send (default 5000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    a = ap.parse_args()
    with virtual_board() as (_d, port), tempfile.TemporaryDirectory(prefix="itpump-keys-") as kd:
        ks = setup(port, Path(kd))
        stats, codes, kinds, first, dt, sent = run(port, ks, a.frames, a.seed)
    rows = [
        ("frames sent through the virtual board", f"{sent:,}", f"seed {a.seed}; {dt:.1f} s, "
                                                               f"{sent / dt:.0f} frames/s incl. status checks"),
        ("crashes (restart, REPL, no answer, bad reply)", str(stats["crashes"]), "goal 0"),
        ("state changes on rejected frames", str(stats["state changes on rejects"]), "goal 0"),
        ("frames accepted", str(stats["accepted"]), "valid signed frames (service op excluded)"),
        ("reject codes", ", ".join(f"{c} {n}" for c, n in codes.most_common()), ""),
        ("frame kinds", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())), ""),
    ]
    print_table("link fuzz on the virtual board (therapy running, REPL locked)", rows)
    for f in first:
        print("  first findings:", f)
    return 1 if stats["crashes"] or stats["state changes on rejects"] else 0


if __name__ == "__main__":
    sys.exit(main())
