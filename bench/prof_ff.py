"""Where a fast-forward's time goes: the sim ROM (virtual clock, USB-CDC, watchdog, plant) and the
firmware (App loop) in one micropython process, without the host bridge, timed part by part
(docs/figures.md)."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import MP_KEYED_APP  # noqa: E402

SCRIPT = r"""
import gc, json, sys, time
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/boards/sim")
sys.path.insert(0, ROOT + "/boards/sim/rom")
import vfs
import simrom, simhw, vclock
from cdc import Cdc
from flashdev import FlashDev
from simwdt import SimWdt

def _signal(msg):
    pass

def _reset(cause="HARD"):
    raise SystemExit("reset " + cause)

clk = vclock.VClock(1)
simrom.clock = clk
simrom.cdc = Cdc(clk)
simrom.wdt = SimWdt(clk, _signal, _reset)
fl = simrom.flash = FlashDev(TMP + "/flash.bin")
vfs.VfsLfs2.mkfs(fl)
vfs.mount(vfs.VfsLfs2(fl), "/fl")
simrom.world = simhw.World(clk, open(TMP + "/plant.json", "w+"), 1)
import board
b = board.build()
""" + MP_KEYED_APP + r"""from itpump import pump
nt = clk.ticks_add(clk.ticks_ms(), pump.TICK_MS)
for _ in range(50):  # the program's first ticks at the real rate
    nt = a.step(nt)

T = {}
C = {}
B = {}
BYTES = [False]  # the second run counts bytes, the first times

def wrap(obj, name, label):
    f = getattr(obj, name)
    T[label] = 0
    C[label] = 0
    B[label] = 0
    tu = time.ticks_us
    td = time.ticks_diff
    ma = gc.mem_alloc
    def w(*args):
        if BYTES[0]:  # gc.mem_alloc() walks the heap's table: never inside a timed run
            m0 = ma()
            r = f(*args)
            B[label] += ma() - m0
            C[label] += 1
            return r
        t0 = tu()
        r = f(*args)
        T[label] += td(tu(), t0)
        C[label] += 1
        return r
    setattr(obj, name, w)

def run(days, manual_gc=False):
    global nt
    q = QUANTUM if QUANTUM else vclock.DEFAULT_QUANTUM_MS
    simrom.world.sync()
    simrom.world.plant.soc = 1.0  # a fresh cell (it lasts ~5.7 days; speed30d swaps it every 3)
    clk.fast_forward(int(days * 86400000), q)
    k0 = a.ticks
    d0 = a.pump.delivered_nl + a.pump.dosing.delivered_nl
    t0 = time.ticks_ms()
    step = a.step
    if manual_gc:  # the collector runs between ticks only, so each part's allocation is exact
        gc.disable()
        i = 0
        while clk.skip_to >= 0:
            nt = step(nt)
            i += 1
            if i % 10 == 0:
                gc.collect()
        gc.enable()
    else:
        while clk.skip_to >= 0:
            nt = step(nt)
    wall = time.ticks_diff(time.ticks_ms(), t0)
    a.pump.account()
    k = a.ticks - k0
    return wall, k, a.pump.delivered_nl - d0

gc.collect()
print("heap: %d bytes live after boot, %d free" % (gc.mem_alloc(), gc.mem_free()))
t0 = time.ticks_us()
for _ in range(20):
    gc.collect()
print("gc.collect: %.0f us" % (time.ticks_diff(time.ticks_us(), t0) / 20))
wall, k, dnl = run(DAYS)
exp = DAYS * 500000
print("plain  %.2f s for %s days, %d ticks, %.1f us/tick; delivered %d nL vs %d (%+.4f %%); skipped_ms %d; "
      "alarms %s; reserve_waits %d; saves %d" % (
    wall / 1000, DAYS, k, wall * 1000 / k, dnl, exp, (dnl - exp) * 100 / exp, a.pump.dosing.skipped_ms,
    [x["code"] for x in a.alarms.active()], a.pump.reserve_waits, a.doc.store.generation))
if not PARTS:
    raise SystemExit
p = a.pump
w = simrom.world
# inclusive timers: pump.tick contains the plant's sync
wrap(a, "poll_link", "app.poll_link")
wrap(a, "tick", "app.tick (all)")
wrap(p, "tick", "  pump.tick")
wrap(p, "_deliver", "    pump._deliver")
wrap(p.line, "sense", "    line.sense")
wrap(p.line.occ, "update_gap", "      occ.update_gap")
wrap(p.line.occ, "update", "      occ.update")
wrap(b.pressure, "read_pa", "      pressure.read_pa")
wrap(p.dosing, "tick", "      dosing.tick")
wrap(w, "sync", "  world.sync (anywhere)")
wrap(w.plant, "step", "    plant.step")
wrap(a.alarms, "tick", "  alarms.tick")
wrap(a, "housekeeping", "  app.housekeeping")
wrap(a.battery, "check", "    battery.check")
from itpump import store
wrap(store, "mark_low", "    store.mark_low")
wrap(a.doc, "try_save", "    doc.try_save")
wrap(a.sup, "service", "  sup.service")
wrap(a.doc, "document", "      doc.document")
wrap(a.doc.store, "save", "      store.save")
wrap(a.doc.store, "save_mark", "      store.save_mark")
wrap(fl, "readblocks", "        flash.readblocks")
wrap(fl, "writeblocks", "        flash.writeblocks")
wrap(fl, "ioctl", "        flash.ioctl")
wrap(a.log, "append", "    log.append")
wrap(b.serial, "wait", "cdc.wait")
wrap(clk, "idle", "  clock.idle")
wrap(b.serial, "readchar", "cdc.readchar")
wall, k, dnl = run(DAYS)
print("timed  %.2f s, %d ticks, %.1f us/tick (wrappers included)" % (wall / 1000, k, wall * 1000 / k))
t = dict(T)
c = dict(C)
for label in sorted(T):
    if c[label]:
        print("  %-28s %8.1f us/tick  %7d calls  %6.1f us/call" % (label, t[label] / k, c[label], t[label] / c[label]))
for label in B:
    B[label] = 0
    C[label] = 0
BYTES[0] = True
wall, k2, dnl = run(DAYS, True)
print("allocated per tick (collector run by hand every 10 loop passes):")
for label in sorted(B):
    if C[label]:
        print("  %-28s %7.1f bytes/tick" % (label, B[label] / k2))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=float, default=1, help="simulated days (default 1)")
    ap.add_argument("--quantum", type=int, default=0, metavar="MS", help="fast-forward quantum (default: the ROM's)")
    ap.add_argument("--no-parts", action="store_true", help="the plain run only, no timed parts")
    ap.add_argument("--heap", default="384K",  # the wrappers and timers need room beside the firmware
                    help="micropython heap (default 384K)")
    a = ap.parse_args()
    mpy = Path(sys.executable).parent / "micropython"
    with tempfile.TemporaryDirectory(prefix="itpump-prof-") as d:
        path = Path(d) / "prof.py"
        path.write_text(f"ROOT = {str(ROOT)!r}\nTMP = {d!r}\nDAYS = {a.days!r}\nQUANTUM = {a.quantum}\n"
                        f"PARTS = {not a.no_parts}\n" + SCRIPT)
        # stdin: an idle pipe (the CDC polls it as the bridge's); nothing is ever written to it
        with subprocess.Popen(["sleep", "3600"], stdout=subprocess.PIPE) as idle:
            r = subprocess.run([str(mpy), "-X", f"heapsize={a.heap}", str(path)], stdin=idle.stdout,
                               capture_output=True, text=True, timeout=900)
            idle.kill()
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
