"""Time to verify one signed frame under the real micropython binary (unix port): a MAC verify of a
typical and of a maximum-size change frame, and a full dispatch of a signed change (docs/figures.md)."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

SCRIPT = r"""
import sys, time, json, gc
sys.path.insert(0, ROOT + "/firmware")
from itpump import auth as A, protocol as P

KEY = bytes((i * 91 + 5) % 256 for i in range(32))
KEYS = {"clinician": KEY}
N = NFRAMES

class C:
    def load(self): return {}
    def save(self, d): pass
class Clk:
    def ticks_ms(self): return time.ticks_ms()
    def ticks_diff(self, a, b): return time.ticks_diff(a, b)

def frame(ctr, pad):
    body = json.dumps({"id": ctr, "op": "bolus", "args": {"volume_ul": 50, "note": "x" * pad},
                       "role": "clinician", "ctr": ctr}).encode()
    return body, body + b"\t" + A.hmac_hex(KEY, body).encode()

def verify_us(pad):
    pads = A._pads(KEY)
    body, line = frame(1, pad)
    mac = A.binascii.unhexlify(line[-64:])
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(N):
        assert A.equal(A._hmac(pads, body), mac)
    return time.ticks_diff(time.ticks_us(), t0) / N, len(body)

def dispatch_us():
    au = A.Authenticator(Clk(), C(), keys=KEYS, free_failures=100)
    ops = {"bolus": (lambda a: {"ok": 1}, P.CHANGE)}
    lines = [frame(i + 1, 0)[1] for i in range(N)]
    gc.collect()
    t0 = time.ticks_us()
    for ln in lines:
        P.dispatch(ln, ops, au)
    return time.ticks_diff(time.ticks_us(), t0) / N

us, n = verify_us(0)
print("verify_typical %d %.1f" % (n, us))
us, n = verify_us(P.MAX_BODY - 110)
print("verify_max %d %.1f" % (n, us))
print("dispatch_change %.1f" % dispatch_us())
"""


def main():
    from pumpctl.vboard import micropython_exe

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="frames per measurement")
    a = ap.parse_args()
    exe = micropython_exe()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(f"ROOT = {str(ROOT)!r}\nNFRAMES = {a.n}\n" + SCRIPT)
    try:
        r = subprocess.run([exe, "-X", "heapsize=2M", f.name], capture_output=True, text=True, timeout=600)
    finally:
        Path(f.name).unlink()
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        return 1
    got = {}
    for line in r.stdout.split("\n"):
        parts = line.split()
        if parts:
            got[parts[0]] = parts[1:]
    n, us = got["verify_typical"]
    print(f"micropython ({Path(exe).name}, unix port, heap 2M), {a.n} frames each:")
    print(f"  MAC verify, typical change frame ({n} B): {float(us):8.1f} us per verify")
    n, us = got["verify_max"]
    print(f"  MAC verify, maximum-size frame ({n} B): {float(us):8.1f} us per verify")
    print(f"  full dispatch of a signed change:        {float(got['dispatch_change'][0]):8.1f} us per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
