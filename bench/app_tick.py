"""Cost of the app's control tick with every safety part wired, under the real micropython binary (unix
port) on the fake pump board of tests/firmware: us and bytes allocated per tick for the control tick,
housekeeping, all ticks and pump.tick alone (docs/figures.md)."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys, time, gc
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/tests/firmware")
from test_app import programmed

r = programmed()
a, b, c = r.a, r.b, r.b.clock
a.sup.start()
r.run_ms(60000)  # detector armed, moves and the first checkpoints behind us
assert a.pump.line.occ.armed() and a.pump.running()

def measure(kind, n):
    tot_us = 0
    tot_b = 0
    k = 0
    gc.collect()
    gc.disable()
    for _ in range(n):
        c.advance(100)
        hk = a.housekeeping_due(c.ticks_ms())
        if kind == "control" and hk or kind == "house" and not hk:
            a.poll_link()
            a.tick()
            continue
        m0 = gc.mem_alloc()
        t0 = time.ticks_us()
        if kind == "pump":
            a.pump.tick(c.ticks_ms())
        else:
            a.poll_link()
            a.tick()
        t1 = time.ticks_us()
        m1 = gc.mem_alloc()
        tot_us += time.ticks_diff(t1, t0)
        tot_b += m1 - m0
        k += 1
        if k % 200 == 0:
            gc.enable()
            gc.collect()
            gc.disable()
    gc.enable()
    print("%-14s %8.1f us/tick %8.1f bytes/tick  (%d ticks)" % (kind, tot_us / k, tot_b / k, k))

moves = b.motor.moves
for kind in ("control", "house", "all", "pump", "control", "all"):  # repeated: warm-up effects show
    measure(kind, N)
assert a.pump.running() and not a.alarms.active() and b.motor.moves > moves
print("wdt feeds", b.wdt.feeds, "motor moves", b.motor.moves - moves, "line state", a.pump.line.state)
r.close()
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=5000, help="ticks per measurement")
    a = ap.parse_args()
    mpy = Path(sys.executable).parent / "micropython"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(f"ROOT = {str(ROOT)!r}\nN = {a.n}\n" + SCRIPT)
        path = f.name
    r = subprocess.run([str(mpy), path], capture_output=True, text=True, timeout=600)
    Path(path).unlink()
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
