"""`make bench`: the foundation figures, then every other bench script in this folder.

Figures are medians of a few runs on this (shared, noisy) machine; read ratios within one run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, median_time, print_table, tool, vboard, virtual_board, wait_status

RUNS = 5


def foundation_rows() -> list[tuple[str, str, str]]:
    rows = []
    with virtual_board() as (d, port):
        boots = []
        for _ in range(RUNS):
            vboard.stop(d)
            t0 = time.perf_counter()
            wait_status(vboard.start(d))
            boots.append(time.perf_counter() - t0)
        med, lo, hi = statistics.median(boots), min(boots), max(boots)
        rows.append(("virtual board boot (start -> status answers)", f"{med * 1000:.0f} ms",
                     f"min {lo * 1000:.0f}, max {hi * 1000:.0f}, n={RUNS}; flashed .py firmware"))
        port = vboard.status(d)["port"]
        for flavour, extra in ((".py", []), ("--mpy", ["--mpy"])):
            def reflash(extra=extra):
                tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", *extra)

            reflash()  # this flavour in place first: every timed run finds each file unchanged
            med, lo, hi = median_time(reflash, 3)
            rows.append((f"reflash, every file unchanged ({flavour})", f"{med:.2f} s",
                         f"min {lo:.2f}, max {hi:.2f}, n=3; SHA-256 of each file, none copied + restart + status"))
    for flavour, extra in ((".py", []), ("--mpy", ["--mpy"])):
        ts = [blank_board_flash_s(extra) for _ in range(3)]
        rows.append((f"flash whole firmware onto a blank board ({flavour})", f"{statistics.median(ts):.2f} s",
                     f"min {min(ts):.2f}, max {max(ts):.2f}, n=3; copy every file + SHA-256 verify + restart "
                     "+ status"))
    med, lo, hi = median_time(lambda: tool("pumpctl", "--help"), RUNS)
    rows.append(("pumpctl --help start-up", f"{med * 1000:.0f} ms", f"min {lo * 1000:.0f}, max {hi * 1000:.0f}, "
                                                                    f"n={RUNS}"))
    return rows


def blank_board_flash_s(extra: list[str]) -> float:
    """Seconds of one full flash: a fresh virtual board (blank littlefs, started before the clock)
    takes every file, as a new Pico does."""
    with virtual_board(flashed=False) as (_d, port):
        t0 = time.perf_counter()
        tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", *extra)
        return time.perf_counter() - t0


def main() -> int:
    t0 = time.monotonic()
    print_table("itpump foundation", foundation_rows())
    others = sorted(p for p in Path(__file__).parent.glob("*.py")
                    if p.name not in ("run.py", "common.py", "demo.py"))
    failed = []
    for script in others:
        print(f"\n== bench/{script.name}", flush=True)
        r = subprocess.run([sys.executable, str(script)], cwd=ROOT)
        if r.returncode != 0:
            failed.append(script.name)
    print(f"\nbench done in {time.monotonic() - t0:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
