"""Shared helpers for the bench scripts: a throwaway virtual board and a figures table."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from pumpctl import vboard  # noqa: E402
from pumpctl.client import Client  # noqa: E402
from pumpctl.link import Link  # noqa: E402

BIN = Path(sys.executable).parent

# MicroPython source for the benches that run the App in one micropython process (heap7d, prof_ff): given
# a board `b` and littlefs mounted at /fl (and gc, json imported), write a clinician key, boot the App as
# `a`, and refill and program 0.5 mL/day of morphine through signed request frames (change()).
MP_KEYED_APP = r'''
KEY = bytes(range(40, 72))
with open("/fl/keys.json", "w") as f:
    f.write(json.dumps({"v": 1, "keys": {"clinician": "".join("%02x" % x for x in KEY)}}))
gc.collect()
from itpump import app, auth, protocol
a = app.App(b, root="/fl/")
a.sup.start()
a.boot()
n = [0]

def change(op, args):
    n[0] += 1
    body = json.dumps({"id": n[0], "op": op, "args": args, "role": "clinician", "ctr": n[0]}).encode()
    r = json.loads(protocol.dispatch(body + b"\t" + auth.hmac_hex(KEY, body).encode(), a.ops, a.auth))
    assert r["ok"], r

change("refill", {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0})
change("program", {"rx": {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000,
                          "mode": "continuous", "dose_ng_per_day": 5000000}})
'''


def tool(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return r


@contextlib.contextmanager
def virtual_board(speed: float = 1.0, flashed: bool = True):
    with tempfile.TemporaryDirectory(prefix="itpump-bench-") as d:
        port = vboard.start(d, speed=speed)
        try:
            if flashed:
                tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet")
            yield d, port
        finally:
            vboard.stop(d)


def wait_status(port: str, timeout_s: float = 15) -> dict:
    with Link(port) as link:
        return Client(link).wait_ready(timeout_s)


def median_time(fn, n: int) -> tuple[float, float, float]:
    """(median, min, max) seconds of n calls."""
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), max(ts)


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("notes")
    for r in rows:
        t.add_row(*r)
    Console(width=120).print(t)
