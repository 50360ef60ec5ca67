"""Figure: 30 simulated days in <= 30 s of wall time: a throwaway virtual board programmed at 0.5 mL/day,
then fast-forwarded; wall time, virtual/wall ratio, ticks and delivered volume (docs/figures.md)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import tool  # noqa: E402
from pumpctl import keys, vboard  # noqa: E402
from pumpctl.client import Client  # noqa: E402
from pumpctl.link import Link  # noqa: E402
from pumpctl.mpr import Device  # noqa: E402

ML_PER_DAY = 0.5
CONC_UG_PER_ML = 10000  # morphine 10 mg/mL
RX = {"drug": "morphine", "conc_ug_per_ml": CONC_UG_PER_ML, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": int(ML_PER_DAY * CONC_UG_PER_ML * 1000)}
FILL = {"drug": "morphine", "conc_ug_per_ml": CONC_UG_PER_ML, "added_nl": 20000000, "removed_nl": 0}


def prepare(d: str, heap: str = vboard.DEFAULT_HEAP, mpy: bool = False, seed: int = 1) -> tuple[str, keys.Keystore]:
    """Start, flash, install fresh keys, refill and program. Returns (port, keystore)."""
    port = vboard.start(d, heap=heap, seed=seed)
    tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", *(["--mpy"] if mpy else []))
    with Link(port) as link:
        dev_id = Client(link).wait_ready(20)["device_id"]
    ks = keys.provision(dev_id, root=Path(d) / "keys")
    with Device(port) as dev:
        dev.write_file("/keys.json", ks.device_file())
        dev.soft_reset()
    with Link(port) as link:
        c = Client(link)
        st = c.wait_ready(20)
        assert st["keys"] == "ok", st
        c.change("refill", FILL, ks)
        c.change("program", {"rx": RX}, ks)
    return port, ks


def board_cpu_s(d: str) -> float:
    """CPU seconds (user + system) used so far by the board's processes (the bridge's descendants):
    the wall figure on a loaded host, less the time others took."""
    root = vboard.State(d).pid()
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            f = (e / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(e.name)] = f
        kids.setdefault(int(f[1]), []).append(int(e.name))
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        f = stats[pid]
        total += (int(f[11]) + int(f[12])) / tick
        todo += kids.get(pid, [])
    return total


# The plant's cell (18650, 3450 mAh at 25 mA idle) lasts ~5.7 days: the bench swaps it every 3 days
# (sim.fault battery soc=1), as one would on the bench, so a 30-day run delivers all along.
SWAP_EVERY_S = 3 * 86400


def advance(c: Client, seconds: int, quantum_ms: int | None, poll_s: float = 0.2) -> int:
    """Fast-forward in chunks of SWAP_EVERY_S with a fresh battery before each. Returns the swaps."""
    swaps = 0
    left = seconds
    while left > 0:
        chunk = min(left, SWAP_EVERY_S)
        c.request("sim.fault", {"fault": "battery", "soc": 1.0})
        swaps += 1
        args = {"s": chunk}
        if quantum_ms is not None:
            args["quantum_ms"] = quantum_ms
        c.request("sim.advance", args)
        while c.request("sim.clock")["fast_forward"]:
            time.sleep(poll_s)
        left -= chunk
    return swaps


def run(days: float, quantum_ms: int | None, heap: str, mpy: bool, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="itpump-speed-") as d:
        port, _ks = prepare(d, heap, mpy, seed)
        try:
            with Link(port) as link:
                c = Client(link, timeout_s=30)
                st0 = c.request("status")
                w0 = c.request("sim.state")
                cpu0 = board_cpu_s(d)
                t0 = time.perf_counter()
                swaps = advance(c, int(days * 86400), quantum_ms)
                wall = time.perf_counter() - t0
                cpu = board_cpu_s(d) - cpu0
                st = c.request("status")
                w = c.request("sim.state")
                clk = c.request("sim.clock")
        finally:
            vboard.stop(d)
    virt_s = (st["uptime_ms"] - st0["uptime_ms"]) / 1000
    return {
        "days": days, "quantum_ms": clk.get("quantum_ms") if quantum_ms is None else quantum_ms,
        "wall_s": wall, "cpu_s": cpu, "load": os.getloadavg()[0], "virtual_s": virt_s, "ratio": virt_s / wall,
        "ticks": st["ticks"] - st0["ticks"],
        "delivered_nl": st["delivered_nl"] - st0["delivered_nl"],
        "pumped_ul": w["pumped_ul"] - w0["pumped_ul"],
        "plant_delivered_ul": w["delivered_ul"] - w0["delivered_ul"],
        "steps_in": w["steps_in"] - w0["steps_in"], "expected_nl": ML_PER_DAY * 1e6 * virt_s / 86400,
        "swaps": swaps, "alarms": st.get("alarms"), "skipped_ms": st["dosing"]["skipped_ms"],
        "jumps": clk.get("jumps"), "reset_cause": st["reset_cause"], "mem_free": st["mem_free"],
    }


def report(r: dict) -> None:
    exp = r["expected_nl"]
    print(f"virtual days        {r['virtual_s'] / 86400:.3f}  (quantum {r['quantum_ms']} ms)")
    print(f"wall seconds        {r['wall_s']:.2f}  (board CPU {r['cpu_s']:.2f} s; host load average {r['load']:.1f})")
    print(f"virtual/wall        {r['ratio']:.0f}x")
    print(f"ticks executed      {r['ticks']}  ({r['wall_s'] / max(r['ticks'], 1) * 1e6:.1f} us wall per tick)")
    print(f"delivered (fw)      {r['delivered_nl']} nL  vs expected {exp:.0f} nL  "
          f"({(r['delivered_nl'] - exp) / exp * 100:+.3f} %)")
    print(f"steps (plant)       {r['steps_in']}  = {r['steps_in'] * 15} nL at the nominal 15 nL/step")
    print(f"pumped (plant)      {r['pumped_ul'] * 1000:.0f} nL  (true volume: unit bias of the head included)")
    print(f"battery swaps       {r['swaps']} (one per {SWAP_EVERY_S // 86400} days)")
    print(f"reset cause / alarms  {r['reset_cause']} / {r['alarms']}  (dosing skipped_ms {r['skipped_ms']})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=float, default=30, help="simulated days (default 30)")
    ap.add_argument("--quantum", type=int, default=None,
                    help="sim.advance quantum_ms (default: the ROM's; 100: the fine tick, for comparison)")
    ap.add_argument("--heap", default=vboard.DEFAULT_HEAP, help="the virtual board's heap")
    ap.add_argument("--mpy", action="store_true", help="flash the firmware as .mpy")
    ap.add_argument("--seed", type=int, default=1, help="the plant's seed")
    a = ap.parse_args()
    report(run(a.days, a.quantum, a.heap, a.mpy, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
