"""Figure: a 7-day scenario runs on real MicroPython with -X heapsize=96K; the steady-state tick
allocates nothing. A lean run (the firmware as .mpy on a lean board) and, with --vboard, the virtual
board (docs/figures.md: why two runs, and what each prints)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "bench"))

sys.path.insert(0, str(ROOT / "firmware"))

import itpump  # noqa: E402
from common import MP_KEYED_APP  # noqa: E402
from pumpctl import flash, vboard  # noqa: E402

HEAP_K = 96
# app first, as main.py imports it: compiling app.py from source takes ~100 KB of parse tree on the
# 64-bit port, which only an empty heap has (app then imports the others, a gc.collect() between each)
MODULES = ("app",) + itpump.MODULES

# -- scripts run by the micropython binary ------------------------------------------------------------
ROM_SCRIPT = """
import gc, sys
gc.collect()
a0 = gc.mem_alloc()
sys.path.insert(0, %(rom)r)
import simrom
simrom.power_on(%(state)r, "PWRON", 1.0, 1)
gc.collect()
print("RESULT", {"before": a0, "after": gc.mem_alloc(), "free": gc.mem_free()})
"""

IMPORT_SCRIPT = """
import gc, sys
sys.path.insert(0, %(fw)r)
gc.collect()
a0 = gc.mem_alloc()
for m in %(mods)r:
    __import__("itpump." + m)
    gc.collect()
print("RESULT", {"before": a0, "after": gc.mem_alloc()})
"""

LEAN_SCRIPT = """
import gc, json, os, sys, time
import micropython
sys.path.insert(0, %(fw)r)
sys.path.insert(0, %(fakes)r)
sys.path.insert(0, %(rom)r)
import vfs
from flashdev import FlashDev
from fakes import FakePumpBoard
gc.collect()
boot_base = gc.mem_alloc()  # interpreter + the lean board's modules, before the firmware
fl = FlashDev(%(flash)r)
vfs.VfsLfs2.mkfs(fl)
vfs.mount(vfs.VfsLfs2(fl), "/fl")
b = FakePumpBoard(pl_per_step=15000)
clk = b.clock
Q = [%(quantum)d]

def wait(ms):  # the fast-forward's coarse idle: jump the quantum (the sim ROM's cdc does the same)
    clk.advance(Q[0] if Q[0] > ms else ms)

b.serial.wait = wait
%(rig)sgc.collect()
boot_alloc = gc.mem_alloc()
out = {"heap": gc.mem_alloc() + gc.mem_free(), "boot_base": boot_base, "boot_alloc": boot_alloc}
min_free = gc.mem_free()
min_free_gc = gc.mem_free()
max_live = boot_alloc
gcs = 0
prev = gc.mem_free()
nt = clk.ticks_add(clk.ticks_ms(), 100)
span = int(%(days)s * 86400000)
v = 0
hour = 0
t0 = time.ticks_ms()
t_start = a.ticks
while v < span:
    t = clk.now
    nt = a.step(nt)
    v += clk.ticks_diff(clk.now, t)
    f = gc.mem_free()
    if f > prev:
        gcs += 1  # free memory grew without our collect: the collector ran
    if f < min_free:
        min_free = f
    prev = f
    if v // 3600000 > hour:  # hourly: live data after a collection
        hour = v // 3600000
        gc.collect()
        f = gc.mem_free()
        if f < min_free_gc:
            min_free_gc = f
        if gc.mem_alloc() > max_live:
            max_live = gc.mem_alloc()
        prev = f
out["wall_s"] = time.ticks_diff(time.ticks_ms(), t0) / 1000
out["ticks"] = a.ticks - t_start
a.pump.account()
gc.collect()
out.update({"day_alloc": gc.mem_alloc(), "min_free": min_free, "min_free_after_gc": min_free_gc,
            "max_live": max_live, "gcs": gcs, "delivered_nl": a.pump.delivered_nl,
            "alarms": [x["code"] for x in a.alarms.active()], "skipped_ms": a.pump.dosing.skipped_ms,
            "running": a.pump.running()})

# Steady state at the real 100 ms tick: the control tick (pump, alarms, supervisor) under heap_lock.
Q[0] = 100
for i in range(50):
    nt = a.step(nt)
p = a.pump
moves = b.motor.moves
gc.collect()
micropython.heap_lock()
err = None
try:
    i = 0
    while i < %(locked)d:
        clk.advance(100)
        now = clk.ticks_ms()
        p.tick(now)
        a.alarms.tick(now)
        a.sup.service(now)
        i += 1
except MemoryError as e:
    err = "MemoryError at tick %%d" %% i
finally:
    micropython.heap_unlock()
out["locked_ticks"] = %(locked)d
out["locked_error"] = err
out["locked_moves"] = b.motor.moves - moves

# The whole loop (link poll, tick, housekeeping once a second, checkpoints): bytes allocated per tick.
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
k0 = a.ticks
while a.ticks - k0 < %(counted)d:
    nt = a.step(nt)
out["loop_bytes"] = gc.mem_alloc() - a0
out["loop_ticks"] = a.ticks - k0
gc.enable()
print("RESULT", json.dumps(out))
"""


class Failed(Exception):
    pass


def mp(script: str, heap: str, timeout: float = 900) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(script)
    r = subprocess.run([vboard.micropython_exe(), "-X", f"heapsize={heap}", f.name], capture_output=True,
                       text=True, timeout=timeout)
    Path(f.name).unlink()
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            text = line[7:]
            return json.loads(text) if text.startswith("{\"") else eval(text)  # noqa: S307 (our own dict repr)
    raise Failed(f"micropython failed (heap {heap}):\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")


def firmware_dir(tmp: Path, mpy: bool) -> Path:
    d = tmp / ("mpy" if mpy else "src")
    for f in flash.plan("sim", mpy=mpy):
        p = d / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f.data)
    return d


def rom_footprint(tmp: Path) -> dict:
    state = tmp / "romstate"
    state.mkdir()
    return mp(ROM_SCRIPT % {"rom": str(ROOT / "boards/sim/rom"), "state": str(state)}, "256K")


def import_footprint(fw: Path) -> int:
    r = mp(IMPORT_SCRIPT % {"fw": str(fw), "mods": MODULES}, "256K")
    return r["after"] - r["before"]


def lean_run(fw: Path, tmp: Path, days: float, heap: str) -> dict:
    return mp(LEAN_SCRIPT % {"fw": str(fw), "fakes": str(ROOT / "tests/firmware"), "rom": str(ROOT / "boards/sim/rom"),
                             "flash": str(tmp / "lean_flash.bin"), "quantum": 4900, "days": days,
                             "locked": 3000, "counted": 300, "rig": MP_KEYED_APP}, heap, timeout=1800)


def vboard_run(days: float, heap: str) -> dict:
    import speed30d

    from pumpctl.client import Client
    from pumpctl.link import Link

    with tempfile.TemporaryDirectory(prefix="itpump-heap-") as d:
        port, _ks = speed30d.prepare(d, heap=heap, mpy=True)
        try:
            with Link(port) as link:
                c = Client(link, timeout_s=30)
                st = c.request("status")
                boot = st["mem_alloc"]
                min_free = st["mem_free"]
                left = int(days * 86400)
                t0 = time.perf_counter()
                while left > 0:
                    chunk = min(left, speed30d.SWAP_EVERY_S)
                    c.request("sim.fault", {"fault": "battery", "soc": 1.0})
                    c.request("sim.advance", {"s": chunk})
                    while c.request("sim.clock")["fast_forward"]:
                        min_free = min(min_free, c.request("status")["mem_free"])
                        time.sleep(0.5)
                    left -= chunk
                wall = time.perf_counter() - t0
                st = c.request("status")
        finally:
            vboard.stop(d)
    return {"heap": heap, "boot_alloc": boot, "day_alloc": st["mem_alloc"], "min_free_after_gc": min(min_free,
            st["mem_free"]), "reset_cause": st["reset_cause"], "alarms": st["alarms"],
            "delivered_nl": st["delivered_nl"],
            "uptime_d": st["uptime_ms"] / 86400000, "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=float, default=7, help="simulated days (default 7)")
    ap.add_argument("--vboard", action="store_true", help="also run the virtual board at 96K + the ROM")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="itpump-heap7d-") as t:
        tmp = Path(t)
        rom = rom_footprint(tmp)
        rom_bytes = rom["after"] - rom["before"]
        print(f"ROM footprint (sim ROM after power-on, before firmware)  {rom_bytes} B "
              f"(interpreter itself {rom['before']} B)")
        src = import_footprint(firmware_dir(tmp, False))
        mpyd = firmware_dir(tmp, True)
        mpy = import_footprint(mpyd)
        print(f"firmware imported (all itpump modules, after gc)       source {src} B   .mpy {mpy} B")
        heap_k = HEAP_K
        try:
            r = lean_run(mpyd, tmp, a.days, f"{heap_k}K")
        except Failed as e:
            print(f"\nlean board at -X heapsize={HEAP_K}K FAILS: {str(e).strip().splitlines()[-1]}")
            # the smallest heap (16K steps) where boot + a short run + the checks pass, then the full run there
            heap_k = HEAP_K
            while True:
                heap_k += 16
                try:
                    lean_run(mpyd, tmp, 0.05, f"{heap_k}K")
                    break
                except Failed:
                    if heap_k > 1024:
                        raise
            print(f"smallest heap that boots and runs (16K steps): {heap_k}K; "
                  f"the {a.days:g}-day run there:")
            try:
                r = lean_run(mpyd, tmp, a.days, f"{heap_k}K")
            except Failed:
                heap_k += 16
                print(f"... failed over {a.days:g} days; at {heap_k}K:")
                r = lean_run(mpyd, tmp, a.days, f"{heap_k}K")
        print(f"\nlean board, micropython -X heapsize={heap_k}K, firmware as .mpy, {a.days:g} days at 4.9 s ticks:")
        print(f"  heap                    {r['heap']} B")
        print(f"  mem_alloc after gc      boot (programmed) {r['boot_alloc']} B   day {a.days:g} {r['day_alloc']} B "
              f"(lean board + interpreter before firmware: {r['boot_base']} B)")
        print(f"  max live (hourly gc)    {r['max_live']} B   min free after gc {r['min_free_after_gc']} B")
        print(f"  min free seen (no gc)   {r['min_free']} B   collections seen {r['gcs']}")
        print(f"  ticks {r['ticks']}  wall {r['wall_s']:.1f} s  delivered {r['delivered_nl']} nL  "
              f"running {r['running']}  alarms {r['alarms']}  skipped_ms {r['skipped_ms']}")
        lk = "allocates nothing" if r["locked_error"] is None else r["locked_error"]
        print(f"  control tick (pump+alarms+supervisor) x{r['locked_ticks']} at 100 ms under heap_lock: {lk} "
              f"({r['locked_moves']} motor moves)")
        print(f"  whole loop (link+tick+housekeeping+checkpoints): {r['loop_bytes']} B over {r['loop_ticks']} ticks "
              f"({r['loop_bytes'] / max(r['loop_ticks'], 1):.1f} B/tick)")
        if a.vboard:
            vb_k = heap_k + (rom_bytes + 1023) // 1024
            v = vboard_run(a.days, f"{vb_k}K")
            print(f"\nvirtual board, --heap {v['heap']} (= {heap_k}K + the ROM), firmware flashed as .mpy, "
                  f"{v['uptime_d']:.2f} days:")
            print(f"  mem_alloc after gc      boot {v['boot_alloc']} B   end {v['day_alloc']} B   "
                  f"(includes the ROM's {rom_bytes} B)")
            print(f"  min free after gc       {v['min_free_after_gc']} B (status polled during the run)")
            print(f"  reset cause {v['reset_cause']}  alarms {v['alarms']}  delivered {v['delivered_nl']} nL  "
                  f"wall {v['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
