"""Where the control tick's cycles go on the emulated Pico (EMULATED rp2040js cycles, docs/epico.md): per
segment of therapy, the tick's busy bursts by C function of the frozen image, first segment against
last; --allocs: gc_alloc calls by size and C caller (docs/figures.md)."""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chip_figures as cf  # noqa: E402

from pumpctl import epico, provision  # noqa: E402
from pumpctl.client import Client  # noqa: E402
from pumpctl.link import Link  # noqa: E402


def symbols(elf: Path):
    out = subprocess.run(["arm-none-eabi-nm", "-n", "--defined-only", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        addr, kind, name = line.split(None, 2)
        if kind in "tTwW":
            syms.append((int(addr, 16) & ~1, name))
    addrs = [a for a, _ in syms]

    def name(pc: int) -> str:
        if pc < 0x4000:
            return "(bootrom)"
        i = bisect.bisect_right(addrs, pc & ~1) - 1
        return syms[i][1] if i >= 0 else hex(pc)

    return name, {n: a for a, n in syms}


def by_function(pairs, name) -> collections.Counter:
    c: collections.Counter = collections.Counter()
    for pc, cycles in pairs:
        c[name(pc)] += cycles
    return c


CAUSES = ("littlefs (a flash write)", "gc.collect", "bytecode only (the tick, housekeeping)")


def cause(fns: collections.Counter) -> str:
    """What made a window's burst long, from its C functions: a littlefs call, a collection, or neither."""
    if any(k.startswith("lfs2_") for k in fns):
        return CAUSES[0]
    if fns["gc_mark_subtree"] or fns["gc_collect_end"]:
        return CAUSES[1]
    return CAUSES[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0, help="chip minutes of therapy (default 10)")
    ap.add_argument("--segment", type=float, default=1.0, help="chip minutes per segment")
    ap.add_argument("--top", type=int, default=25, help="C functions listed per segment (default 25)")
    ap.add_argument("--allocs", action="store_true", help="count gc_alloc calls (slower emulation)")
    ap.add_argument("--frozen", help="frozen image (default: pumpctl.fwbuild)")
    ap.add_argument("--over", type=float, default=5.0,
                    help="list the windows whose largest burst is over this %% of the tick (default 5)")
    ap.add_argument("--top-windows", type=int, default=10, help="of those, the largest listed (default 10)")
    ap.add_argument("--dump", help="write the listed windows' cycles by C function to this JSON file")
    a = ap.parse_args(argv)
    missing = epico.missing_prereqs()
    if missing:
        print("chip profile skipped: missing " + ", ".join(missing))
        return 0
    img = cf.image("frozen", a.frozen)
    name, addr = symbols(img.with_suffix(".elf"))
    work = Path(tempfile.mkdtemp(prefix="chipprof-"))
    os.environ["ITPUMP_KEYS_DIR"] = str(work / "keys")
    os.environ["ITPUMP_DATA_DIR"] = str(work / "data")
    d = work / "frozen"
    req = {"op": "stats", "clear_bursts": 1, "profile": 1, "trap": addr["gc_alloc"] if a.allocs else 0,
           "big": int(a.over / 100 * cf.CYCLES_PER_TICK)}
    print("EMULATED: frozen image on rp2040js, cycles at 125 MHz; tick = largest busy burst per 100 ms")
    try:
        port = epico.start(d, firmware=img, erase=True)
        with Link(port) as link:
            Client(link).wait_ready(120)
        provision.provision(port, timeout_s=20, restart_timeout_s=120)
        cf.pc("refill", "--port", port, "--timeout", "20", "--drug", "baclofen", "--conc-ug-per-ml", "100",
              "--added-ml", "20", "--removed-ml", "0")
        cf.pc("program", str(cf.RX), "--yes", "--port", port, "--timeout", "20")
        epico.command(d, req)
        t0 = epico.command(d, {"op": "counts"})["chip_ms"]
        epico.command(d, {"op": "speed", "speed": cf.RUN_AHEAD_SPEED})
        segs = []
        end = t0 + a.minutes * 60_000
        t = t0
        while t < end:
            nxt = min(end, t + a.segment * 60_000)
            while epico.command(d, {"op": "counts"})["chip_ms"] < nxt:
                time.sleep(0.3)
            s = epico.command(d, req, timeout_s=60)
            t = s["chip_ms"]
            b = s["bursts"]
            segs.append((t, b, s["profile"]))
            print(f"therapy min {(t - t0) / 60_000:5.1f}: tick median {statistics.median(b):>9,.0f} cycles "
                  f"({statistics.median(b) / cf.CYCLES_PER_TICK:.2%}), max {max(b):>10,.0f}, {len(b)} windows",
                  flush=True)
        epico.command(d, {"op": "speed", "speed": 1.0})
    finally:
        epico.stop(d)
    first, last = segs[0], segs[-1]
    cols = [(by_function(p["worst"], name), len(b)) for _, b, p in (first, last)]
    keys: collections.Counter = collections.Counter()
    for c, n in cols:
        for k, v in c.items():
            keys[k] += v / n
    mins = [(s[0] - t0) / 60_000 for s in (first, last)]
    print(f"\ncycles per window's largest burst, by C function: min {mins[0]:.1f} | min {mins[1]:.1f}")
    for k, _ in keys.most_common(a.top):
        print(f"  {k:<36} " + " | ".join(f"{c[k] / n:>9,.0f}" for c, n in cols))
    print(f"  {'(all)':<36} " + " | ".join(f"{sum(c.values()) / n:>9,.0f}" for c, n in cols))
    big = [(t, c, by_function(pairs, name)) for _, _, p in segs for t, c, pairs in p["big"]]
    n = sum(len(b) for _, b, _ in segs)
    print(f"\nwindows over {a.over:g} % of the tick: {len(big)} of {n}, by what their largest burst ran:")
    by_cause: dict = collections.defaultdict(list)
    for w in big:
        by_cause[cause(w[2])].append(w[1])
    for k in CAUSES:
        c = sorted(by_cause[k])
        if c:
            print(f"  {k:<40} {len(c):>6} windows, median {statistics.median(c) / cf.CYCLES_PER_TICK:6.2%}, "
                  f"max {c[-1] / cf.CYCLES_PER_TICK:6.2%}")
    print(f"the {min(a.top_windows, len(big))} largest:")
    for t, c, fns in sorted(big, key=lambda w: -w[1])[:a.top_windows]:
        top = ", ".join(f"{k} {v / c:.0%}" for k, v in fns.most_common(4))
        print(f"  therapy s {(t - t0) / 1000:7.1f}: {c:>10,} cycles ({c / cf.CYCLES_PER_TICK:6.2%})  {top}")
    if a.dump:
        Path(a.dump).write_text(json.dumps({"big": [[t - t0, c, fns.most_common()] for t, c, fns in big],
                                            "bursts": [b for _, b, _ in segs]}))
    if a.allocs:
        calls: collections.Counter = collections.Counter()
        for key, n in last[2]["allocs"]:
            size, chain = key.split(":")
            names: list[str] = []
            for x in chain.split(","):
                nm = name(int(x, 16))
                if not names or names[-1] != nm:
                    names.append(nm)
            calls[f"{size:>5} B  " + " < ".join(names[:5])] += n
        n = len(last[1])
        print(f"\ngc_alloc calls in the last segment: {sum(calls.values()) / n:.1f} per 100 ms")
        for k, v in calls.most_common(a.top):
            print(f"  {v / n:6.2f}/window  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
