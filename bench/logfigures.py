"""Flash writes a day under the checkpoint policy (measured by bench/flashday_mpy.py on real littlefs) and
event-log capacity in days (from the record format and the event rates printed; docs/figures.md)."""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "firmware"))
from itpump import eventlog as ev  # noqa: E402
from itpump import store  # noqa: E402
from pumpctl.vboard import micropython_exe  # noqa: E402

DAYS = 7
ENDURANCE_CYCLES = 100_000  # W25Q16JV datasheet (the Pico's 2 MB QSPI flash): min 100k program/erase cycles
# Assumed event rates (records a day). Typical: an intrathecal pump on a stable basal with a few
# patient boluses; busy: titration days, alarms, a clinician session.
TYPICAL = {"bolus": 4, "refused": 2, "alarm": 1, "therapy": 0, "auth": 0}
BUSY = {"bolus": 12, "refused": 12, "alarm": 6, "therapy": 4, "auth": 4}


def rec_bytes(code: int) -> int:
    return ev.HDR_LEN + struct.calcsize(ev.CODES[code][1]) + ev.CRC_LEN


def log_bytes_per_day(rates: dict) -> tuple[int, int]:
    """(records, bytes) a day: the events above, 3 records per alarm (raised, acked, cleared),
    an hourly DELIVERY record, a BOOT and a TIME_SET."""
    per = [(ev.BOLUS_GIVEN, rates["bolus"]), (ev.BOLUS_REFUSED, rates["refused"]),
           (ev.ALARM_RAISED, rates["alarm"]), (ev.ALARM_ACKED, rates["alarm"]), (ev.ALARM_CLEARED, rates["alarm"]),
           (ev.THERAPY, rates["therapy"]), (ev.AUTH_FAILURE, rates["auth"]), (ev.DELIVERY, 24),
           (ev.BOOT, 1), (ev.TIME_SET, 1)]
    return sum(n for _, n in per), sum(n * rec_bytes(c) for c, n in per)


def measure(rates: dict) -> dict:
    r = subprocess.run([micropython_exe(), "-X", "heapsize=8M", str(ROOT / "bench" / "flashday_mpy.py"), str(DAYS),
                        json.dumps(rates)], capture_output=True, text=True, timeout=600)
    m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
    if r.returncode or not m:
        raise SystemExit(r.stdout + r.stderr)
    return json.loads(m.group(1))


def main() -> int:
    print("assumptions")
    print(f"  checkpoint: every {store.CHECKPOINT_MS // 60000} min while delivering + at once on each change"
          f" (bolus start, alarm ack, therapy); basal reserve horizon {store.RESERVE_MS // 60000} min")
    print("  basal 20 uL/h all day; state document as bench/flashday_mpy.py state_doc() (rx, guard buckets, auth)")
    print(f"  log: segments of {ev.SEG_BYTES} B, {ev.MAX_SEGS} kept (oldest dropped);"
          f" record = {ev.HDR_LEN} B header + data + {ev.CRC_LEN} B CRC")
    print(f"  flash: Pico filesystem 352 x 4 KiB blocks, littlefs2; endurance {ENDURANCE_CYCLES:,} cycles/block"
          " (W25Q16JV), littlefs spreads erases (wear levelling)")
    for label, rates in (("typical", TYPICAL), ("busy", BUSY)):
        m = measure(rates)
        d = m["days"]
        nrec, nbytes = log_bytes_per_day(rates)
        erases_day = m["erases"] / d
        life_years = ENDURANCE_CYCLES * m["blocks"] / erases_day / 365 if erases_day else float("inf")
        keep_min = (ev.MAX_SEGS - 1) * ev.SEG_BYTES  # right after a drop
        print(f"\n{label} day: {rates}")
        print(f"  saves/day (measured):            {m['saves'] / d:.0f}  (store.saves_per_day: "
              f"{store.saves_per_day(store.CHECKPOINT_MS)} scheduled + changes); document {m['doc_bytes']} B")
        print(f"  log appends/day (measured):      {m['appends'] / d:.0f}")
        print(f"  flash block programs/day:        {m['programs'] / d:.0f}")
        print(f"  flash block erases/day:          {erases_day:.0f}")
        print(f"  bytes programmed/day:            {m['prog_bytes'] / d / 1024:.0f} KiB")
        print(f"  flash wear-out (even wear):      {life_years:,.0f} years")
        print(f"  log records/day (assumed):       {nrec}, {nbytes} B/day;"
              f" measured on flash {m['log_bytes_on_flash'] / d:.0f} B/day")
        print(f"  log capacity:                    {keep_min / nbytes:.0f} days guaranteed"
              f" ({keep_min // 1024} KiB after a drop), up to {ev.MAX_SEGS * ev.SEG_BYTES / nbytes:.0f} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
