"""Flash-wear budget of the reserve mark and the checkpoints: erases per day per block, years to the
rated cycles, the hottest block included; and what a reset books at the default rate. Measured by
bench/flashwear_mpy.py on real littlefs (docs/figures.md). Goal: 10 years for the hottest block."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "firmware"))
from itpump import store  # noqa: E402
from pumpctl.vboard import micropython_exe  # noqa: E402

ENDURANCE_CYCLES = 100_000  # W25Q16JV datasheet (the Pico's 2 MB QSPI flash): min 100k program/erase cycles
RATE_NL_PER_H = 20833  # 0.5 mL/day: a typical intrathecal basal
EVENTS = {"bolus": 4, "refused": 2, "alarm": 1}  # a typical day (bench/logfigures.py TYPICAL)
GOAL_YEARS = 10


def measure(days: int, mark: bool) -> dict:
    r = subprocess.run([micropython_exe(), "-X", "heapsize=8M", str(ROOT / "bench" / "flashwear_mpy.py"), str(days),
                        str(RATE_NL_PER_H), json.dumps(EVENTS), "1" if mark else "0"],
                       capture_output=True, text=True, timeout=900)
    m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
    if r.returncode or not m:
        raise SystemExit(r.stdout + r.stderr)
    return json.loads(m.group(1))


def years(per_day: float) -> float:
    return ENDURANCE_CYCLES / per_day / 365 if per_day else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("days", nargs="?", type=int, default=90, metavar="DAYS", help="simulated days (default 90)")
    days = ap.parse_args().days
    print(f"flash wear on the Pico's littlefs2 (352 x 4 KiB blocks, progsize 256, block_cycles 100), {days} "
          "simulated days")
    print(f"  basal {RATE_NL_PER_H} nL/h (0.5 mL/day); events/day {EVENTS}; full state save every "
          f"{store.CHECKPOINT_MS // 60000} min + at once on each change")
    print(f"  reserve mark: {store.MARK_LEN}-byte file rewritten in place, {store.RESERVE_MS // 1000} s of basal"
          f" ahead, moved when less than {store.RESERVE_HEADROOM_MS // 1000} s is left; endurance "
          f"{ENDURANCE_CYCLES:,} cycles/block (W25Q16JV)")
    ok = True
    for label, mark in (("mark file (this firmware)", True), ("without it (20-min horizon)", False)):
        m = measure(days, mark)
        d = m["days"]
        per_day = m["erases"] / d
        mean = per_day / m["blocks"]
        hot = m["hottest_erases"] / d
        print(f"\n{label}")
        print(f"  mark writes/day:              {m['marks'] / d:.0f}")
        print(f"  full saves/day:               {m['saves'] / d:.0f}")
        print(f"  erases/day (all blocks):      {per_day:.0f}")
        print(f"  erases/day per block (mean):  {mean:.2f} -> {years(mean):,.0f} years to {ENDURANCE_CYCLES:,}")
        print(f"  hottest block (#{m['hottest_block']}):          {hot:.2f}/day -> {years(hot):,.1f} years"
              f" (goal >= {GOAL_YEARS})")
        print(f"  booked at a reset (max):      {m['max_booked_nl']:,} nL")
        if mark and years(hot) < GOAL_YEARS:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
