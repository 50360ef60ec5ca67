"""Full power-cut sweep on real littlefs: tests/faults/powercut.py under the micropython binary, a cut
after every single program/erase; prints cut points tried, failures and committed records lost (both
must be 0; docs/figures.md)."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
from pumpctl.vboard import micropython_exe  # noqa: E402


def main() -> int:
    t0 = time.monotonic()
    r = subprocess.run([micropython_exe(), "-X", "heapsize=4M", str(ROOT / "tests" / "faults" / "powercut.py")],
                       capture_output=True, text=True)
    m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
    if r.returncode or not m:
        print(r.stdout + r.stderr)
        return 1
    res = json.loads(m.group(1))
    for line in r.stdout.splitlines():
        if line.startswith("cut after"):
            print(line)
    print("power-cut sweep on littlefs2 (VfsLfs2, 64 x 4096-byte blocks, RAM flash)")
    print(f"  scenario: {res['writes_in_scenario']} program/erase operations, {res['log_records']} log records,"
          f" log rotated (records up to seq {res['dropped_upto_seq']} dropped by design)")
    print(f"  reserve mark file:          {res['mark_writes']} in-place writes in the scenario")
    print(f"  cut points tried:           {res['cut_points']} (every one)")
    print(f"  failures:                   {res['failures']}")
    print(f"  committed records lost:     {res['committed_records_lost']}")
    print(f"  max delivered over-count:   {res['max_overcount_nl']} nL (reserve rule; never under)")
    print(f"  wall time:                  {time.monotonic() - t0:.1f} s")
    return 0 if res["failures"] == 0 and res["committed_records_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
