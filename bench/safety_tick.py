"""Cost of the safety layer's per-tick calls under the real micropython binary (unix port): the dose
guard, the alarm manager, the supervisor and the battery monitor in us per tick, and the heap they
allocate (expected 0; docs/figures.md)."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

SCRIPT = r"""
import sys, time, gc
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/tests/firmware")
from fakes import FakeClock, TICKS_PERIOD
from itpump import guard, alarms, supervisor, power

class Wdt:
    def start(self, t): pass
    def feed(self): pass

def timed(name, fn, arg):
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    fn(arg)
    t1 = time.ticks_us()
    a1 = gc.mem_alloc()
    print("%s %.2f %d" % (name, time.ticks_diff(t1, t0) / N, a1 - a0))

def g_loop(s):
    c, g = s
    for _ in range(N):
        c.advance(100)
        g.record(g.allowance(c.now, 0), c.now)

def a_loop(s):
    c, m = s
    for _ in range(N):
        c.advance(100)
        m.tick(c.now)

def s_loop(s):
    c, sup = s
    for _ in range(N):
        c.advance(100)
        sup.check_in(0, c.now)
        sup.check_in(1, c.now)
        sup.check_in(2, c.now)
        sup.check_in(3, c.now)
        sup.service(c.now)

def p_loop(m):
    for i in range(N):
        m.update(4500 - (i & 63))

c = FakeClock(TICKS_PERIOD - 1000)
g = guard.Guard(guard.Limits(360000, 10 ** 6, 10 ** 7), c)
m = alarms.AlarmManager(c)
for code in (alarms.OCCLUSION, alarms.BATTERY_ERI, alarms.RESERVOIR_LOW):
    m.raise_alarm(code, c.now)
sup = supervisor.Supervisor(Wdt(), c, None, 5000)
for name in ("control", "sensors", "link", "log"):
    sup.add_task(name, 10 ** 6)
sup.start(c.now)
timed("guard", g_loop, (c, g))
timed("alarms", a_loop, (c, m))
timed("supervisor", s_loop, (c, sup))
timed("power", p_loop, power.BatteryMonitor())
"""

LABELS = {"guard": "guard allowance + record", "alarms": "alarms tick (3 active)",
          "supervisor": "supervisor 4 check-ins + service", "power": "power update"}


def main():
    from pumpctl.vboard import micropython_exe

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="ticks per measurement")
    a = ap.parse_args()
    exe = micropython_exe()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(f"ROOT = {str(ROOT)!r}\nN = {a.n}\n" + SCRIPT)
    r = subprocess.run([exe, "-X", "heapsize=1M", f.name], capture_output=True, text=True, timeout=600)
    Path(f.name).unlink()
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        raise SystemExit(1)
    print(f"micropython ({Path(exe).name}, unix port), {a.n} ticks each (fake clock includes its own cost):")
    for line in r.stdout.split("\n"):
        if not line.strip():
            continue
        name, us, alloc = line.split()
        print(f"  {LABELS[name]:36s} {float(us):7.2f} us/tick   heap allocated: {alloc} B")


if __name__ == "__main__":
    main()
