"""Figures of the firmware on the emulated Pico (rp2 MicroPython v1.28 on rp2040js, docs/epico.md) as .py
files, .mpy files and our frozen image: flash and boot time, heap at boot, in therapy and after a log
read, the control tick in RP2040 cycles (docs/figures.md). Needs node, the bootrom and the images
(pumpctl.fwbuild, or --stock/--frozen FILE)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from pumpctl import epico, provision  # noqa: E402
from pumpctl.client import Client  # noqa: E402
from pumpctl.link import Link  # noqa: E402

BIN = Path(sys.executable).parent
RX = ROOT / "examples" / "baclofen_dilute_5ml_per_day.toml"
CYCLES_PER_TICK = 125_000_000 // 10  # a 100 ms control tick at 125 MHz
RUN_AHEAD_SPEED = 20.0  # cap while the therapy span runs: the idle chip runs as fast as the host allows


def pc(*args, timeout=600):
    r = subprocess.run([str(BIN / "pumpctl"), *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"pumpctl {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def status(port) -> dict:
    with Link(port) as link:
        return Client(link, timeout_s=20).request("status")


def image(kind: str, given: str | None) -> Path:
    if given:
        return Path(given)
    from pumpctl import fwbuild

    return Path(fwbuild.build("rpi_pico", frozen=kind == "frozen")) / "firmware.uf2"


def boot_figures(d: Path) -> dict:
    """Power cycle; chip ms and wall s to the first status reply; heap then."""
    epico.stop(d)
    t0 = time.monotonic()
    port = epico.start(d)
    with Link(port) as link:
        st = Client(link).wait_ready(120)
    wall = time.monotonic() - t0
    chip_ms = epico.command(d, {"op": "counts"})["chip_ms"]
    return {"port": port, "boot_chip_s": chip_ms / 1000, "boot_wall_s": wall, "status": st}


def run_variant(name: str, img: Path, therapy_min: float, work: Path) -> dict:
    d = work / name
    port = epico.start(d, firmware=img, erase=True)
    out: dict = {"variant": name}
    t0 = time.monotonic()
    if name == "frozen":
        out["flash"] = "nothing to copy (itpump, board.py and main.py are in the image)"
    else:
        r = pc("flash", "--board", "rpi_pico", "--mpy" if name == "mpy" else "--py", "--quiet",
               "--port", port, "--timeout", "120")
        out["flash"] = r.stdout.splitlines()[0]
    out["flash_wall_s"] = time.monotonic() - t0
    b = boot_figures(d)
    port = b["port"]
    out.update(boot_chip_s=b["boot_chip_s"], boot_wall_s=b["boot_wall_s"],
               heap_boot=(b["status"]["mem_free"], b["status"]["mem_alloc"]))
    # at rest: the firmware's pressure against the sensor reading the plant put on ADC0 (the board's
    # conversion) and against the line's true pressure (plus the simulated sensor's own errors)
    diffs, diffs_true = [], []
    time.sleep(2)  # a few control ticks: the first replies come before the first pressure reading
    for _ in range(10):
        time.sleep(0.3)
        st = status(port)
        c = epico.command(d, {"op": "counts"})
        diffs.append(st["pressure_pa"] - c["reading_pa"])
        diffs_true.append(st["pressure_pa"] - c["pressure_pa"])
    out["pressure_diff_pa"] = (statistics.mean(diffs), statistics.mean(diffs_true))
    provision.provision(port, timeout_s=20, restart_timeout_s=120)
    pc("refill", "--port", port, "--timeout", "20", "--drug", "baclofen", "--conc-ug-per-ml", "100",
       "--added-ml", "20", "--removed-ml", "0")
    pc("program", str(RX), "--yes", "--port", port, "--timeout", "20")
    st = status(port)
    out["heap_therapy_start"] = (st["mem_free"], st["mem_alloc"])
    # the therapy span, no link traffic: paced to real time for 30 s (once a lag from the busy
    # requests is caught up), then run ahead
    epico.command(d, {"op": "stats", "clear_bursts": 1})
    c0 = epico.command(d, {"op": "counts"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s0 = epico.command(d, {"op": "stats"})
        if s0["wall_ms"] - s0["chip_ms"] < 50:
            break
        time.sleep(0.5)
    time.sleep(30)
    s1 = epico.command(d, {"op": "stats"})
    out["speed_paced"] = (s1["chip_ms"] - s0["chip_ms"]) / (s1["wall_ms"] - s0["wall_ms"])
    c1 = epico.command(d, {"op": "counts"})
    w1 = time.monotonic()
    epico.command(d, {"op": "speed", "speed": RUN_AHEAD_SPEED})
    end = c0["chip_ms"] + therapy_min * 60_000
    while epico.command(d, {"op": "counts"})["chip_ms"] < end:
        time.sleep(0.5)
    c2 = epico.command(d, {"op": "counts"})
    w2 = time.monotonic()
    out["speed_ahead"] = (c2["chip_ms"] - c1["chip_ms"]) / 1000 / (w2 - w1)
    stats = epico.command(d, {"op": "stats"})
    epico.command(d, {"op": "speed", "speed": 1.0})
    bursts = stats["bursts"]
    p99 = sorted(bursts)[int(0.99 * (len(bursts) - 1))]
    out["tick_cycles"] = (statistics.median(bursts), p99, max(bursts), len(bursts))
    out["busy"] = None
    out["span_min"] = (c2["chip_ms"] - c0["chip_ms"]) / 60_000
    out["steps"] = c2["steps"] - c0["steps"]
    st = status(port)
    out["heap_after"] = (st["mem_free"], st["mem_alloc"])
    out["alarms"] = st["alarms"]
    r = pc("logs", "--port", port, "--timeout", "20", "--format", "json")
    out["log_records"] = len(json.loads(r.stdout))
    st = status(port)
    out["heap_after_logs"] = (st["mem_free"], st["mem_alloc"])
    epico.stop(d)
    return out


def show(r: dict) -> None:
    kib = 1024
    print(f"\n== {r['variant']} ==")
    print(f"flash: {r['flash']} ({r['flash_wall_s']:.1f} s wall with the restart)")
    print(f"boot to first link reply after power-on: {r['boot_chip_s']:.2f} s chip time, {r['boot_wall_s']:.1f} s wall")
    for key, label in (("heap_boot", "at boot"), ("heap_therapy_start", "therapy just started"),
                       ("heap_after", f"after {r['span_min']:.0f} min of therapy"),
                       ("heap_after_logs", f"after that and a full log read ({r['log_records']} records)")):
        free, used = r[key]
        print(f"heap {label:<48} free {free:>7,} B  used {used:>7,} B ({used / kib:.1f} KiB)")
    med, p99, mx, n = r["tick_cycles"]
    print(f"control tick (largest busy burst per 100 ms, {n} windows): median {med:,.0f} cycles "
          f"({med / CYCLES_PER_TICK:.2%} of the tick), 99th percentile {p99:,.0f} "
          f"({p99 / CYCLES_PER_TICK:.2%}), "
          f"max {mx:,.0f} ({mx / CYCLES_PER_TICK:.2%}) at 125 MHz")
    print(f"emulator speed: {r['speed_paced']:.2f}x real time paced (30 s of therapy); an idle chip in "
          "therapy runs ahead at "
          f"{r['speed_ahead']:.1f}x (cap {RUN_AHEAD_SPEED:.0f}x); {r['steps']} STEP pulses in the span; "
          f"alarms {r['alarms']}")
    conv, true = r["pressure_diff_pa"]
    print(f"pressure at rest (mean of 10): firmware minus the sensor reading on ADC0 {conv:+.0f} Pa (the "
          f"board's conversion, 60 Pa per code); minus the line's true pressure {true:+.0f} Pa")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--therapy-min", type=float, default=10.0, help="therapy span in chip minutes (default 10)")
    ap.add_argument("--frozen-therapy-min", type=float, default=60.0,
                    help="the frozen image's span (default 60: the heap goal is for an hour)")
    ap.add_argument("--variants", default="py,mpy,frozen", help="which of py, mpy, frozen (default all three)")
    ap.add_argument("--stock", help="stock RPI_PICO image (default: pumpctl.fwbuild)")
    ap.add_argument("--frozen", help="frozen image (default: pumpctl.fwbuild)")
    a = ap.parse_args(argv)
    missing = epico.missing_prereqs()
    if missing:
        print("chip figures skipped: missing " + ", ".join(missing))
        return 0
    print("EMULATED figures: official MicroPython v1.28.0 rp2 on rp2040js 1.3.3 (cycle counts are the "
          "emulator's, not silicon's)")
    work = Path(tempfile.mkdtemp(prefix="chipfig-"))
    keys = work / "keys"
    os.environ["ITPUMP_KEYS_DIR"] = str(keys)
    os.environ["ITPUMP_DATA_DIR"] = str(work / "data")
    for name in a.variants.split(","):
        img = image(name, a.frozen if name == "frozen" else a.stock)
        try:
            span = a.frozen_therapy_min if name == "frozen" else a.therapy_min
            show(run_variant(name, img, span, work))
        finally:
            epico.stop(work / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
