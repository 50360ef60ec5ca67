"""Figure: event log records read over the link per second (target: 10,000 in <= 3 s): a virtual board's
own log filled with DELIVERY records, read back with `pumpctl logs` and timed (docs/figures.md)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import BIN, ROOT, Client, Link, virtual_board  # noqa: F401  (ROOT puts host_tools on sys.path)
from pumpctl.mpr import Device  # noqa: E402
from pumpctl.session import MAX_LOG_RECORDS, read_logs  # noqa: E402

TARGET_RECORDS = 10_000
TARGET_S = 3.0
CHUNK = 400  # appends per mpremote exec (each exec has a 10 s budget in mpremote)

FILL = """
import simrom
from itpump import eventlog
lg = eventlog.EventLog("/data/log", simrom.clock, eventlog.WallClock(simrom.clock))
for i in range({n}):
    lg.append(eventlog.DELIVERY, 4167 * (i + 1) % 1000000, 4167)
lg.close()
print(lg.seq, lg.first_seq(), len(lg._segs))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fill", type=int, default=TARGET_RECORDS, help="records to append (default 10000)")
    ap.add_argument("--page", type=int, default=MAX_LOG_RECORDS, help="records per logs request")
    a = ap.parse_args()
    with virtual_board() as (_d, port):
        t0 = time.perf_counter()
        with Device(port) as dev:  # Ctrl-C: the app stops (no therapy: the REPL is open), log closed
            left = a.fill
            seq = first = segs = 0
            while left > 0:
                n = min(CHUNK, left)
                seq, first, segs = (int(x) for x in dev.exec(FILL.format(n=n)).split())
                left -= n
            dev.soft_reset()
        fill_s = time.perf_counter() - t0
        with Link(port) as link:
            Client(link).wait_ready(10)
            got = read_logs(Client(link), page=a.page, timeout_s=30)  # the link already open: not timed
        held = seq - first + 1
        t1 = time.perf_counter()
        cli = subprocess.run([str(BIN / "pumpctl"), "logs", "--port", port, "--format", "csv",
                              "--page", str(a.page)], capture_output=True, text=True, timeout=120)
        cli_s = time.perf_counter() - t1
        if cli.returncode != 0:
            print(cli.stderr, file=sys.stderr)
            return 1
    n = len(got.records)
    rate = n / got.seconds if got.seconds else float("inf")
    t10k = TARGET_RECORDS / rate
    print("link log read (virtual board, op `logs`, paged)")
    print(f"  appended:            {a.fill} DELIVERY records in {fill_s:.1f} s (through mpremote exec)")
    print(f"  ring holds:          {held} records (seq {first}..{seq}, {segs} segments of 16 KiB; "
          f"eventlog.MAX_SEGS x SEG_BYTES)")
    print(f"  read:                {n} records, {got.bytes:,} bytes ({got.line_bytes:,} hex chars) "
          f"in {got.seconds:.2f} s, {got.pages} pages of at most {got.page} asked, "
          f"{n / max(got.pages, 1):.0f} records each on average (the board caps a page: ops.LOG_PAGE_RECORDS; "
          f"{got.memory_retries} halvings after a board MemoryError)")
    print(f"  rate:                {rate:,.0f} records/s, {got.bytes / got.seconds / 1024:,.0f} KiB/s of records")
    print(f"  pumpctl logs (CLI):  {cli_s:.2f} s wall for the same read + csv export (process start included)")
    print(f"  10,000 records:      {t10k:.2f} s at that rate (target <= {TARGET_S:.0f} s): "
          f"{'PASS' if t10k <= TARGET_S else 'FAIL'} "
          f"({'measured on' if n >= TARGET_RECORDS else 'extrapolated: the ring holds'} {n} records)")
    if got.problems:
        print(f"  problems:            {len(got.problems)}: {got.problems[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
