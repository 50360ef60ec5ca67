"""`make demo`: a virtual board from blank to running therapy, driven by the pumpctl commands a user types,
each step's command and its output shown as they are (README.md: What the demo shows)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATE = ROOT / ".vboard" / "demo"
RX = ROOT / "examples" / "morphine_continuous.toml"
FLEX = ROOT / "examples" / "baclofen_flex.toml"
PATIENT_BOLUS = """
[patient_bolus]                  # added by the demo: 50 ug over 10 min, every 2 h at most, 4 a day
dose = "50 ug"
over = "10 min"
lockout = "2 h"
max_per_day = 4
"""


def step(title: str, *args: str, tail: int = 0) -> str:
    print(f"\n$ pumpctl {' '.join(args)}    # {title}", flush=True)
    r = subprocess.run([str(BIN / "pumpctl"), *args], capture_output=True, text=True)
    out = r.stdout
    if tail and out.count("\n") > tail + 1:
        lines = out.splitlines()
        out = "\n".join([lines[0], "...", *lines[-tail:]]) + "\n"
    sys.stdout.write(out)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"demo failed at: pumpctl {' '.join(args)}")
    return r.stdout


def sim(port: str):
    """A protocol client on the board for the sim-only ops (close it before the next pumpctl step)."""
    sys.path.insert(0, str(ROOT / "host_tools"))
    from pumpctl.client import Client
    from pumpctl.link import Link

    class _Sim:
        def __enter__(self):
            self.link = Link(port).__enter__()
            return Client(self.link)

        def __exit__(self, *exc):
            return self.link.__exit__(*exc)

    return _Sim()


def ff(c, seconds: int, quantum_ms: int | None = None) -> None:
    """Fast-forward the virtual clock and wait for the end. quantum_ms 100: the firmware ticks every
    100 ms of virtual time (the occlusion detector's statistics); default: coarse jumps (faster)."""
    args = {"s": seconds} if quantum_ms is None else {"s": seconds, "quantum_ms": quantum_ms}
    c.request("sim.advance", args)
    while c.request("sim.clock")["fast_forward"]:
        time.sleep(0.02)


def advance(port: str, seconds: int) -> None:
    """Fast-forward the virtual clock (a sim-only op; the firmware keeps ticking every 100 ms)."""
    print(f"\n# virtual clock: +{seconds // 3600} h (sim.advance, as fast as the CPU allows)", flush=True)
    t0 = time.monotonic()
    with sim(port) as c:
        ff(c, seconds)
    print(f"# ... took {time.monotonic() - t0:.1f} s of wall time")


def occlusion(port: str, p: list[str]) -> None:
    """Block the catheter, wait for the alarm, show it, clear, acknowledge, show the released bolus."""
    with sim(port) as c:
        ff(c, 60, quantum_ms=100)  # every tick from here: the detector's statistics at full rate
        seq = c.request("status")["log_seq"]
        print("\n# sim.fault occlusion: the catheter is fully blocked (the rollers keep pushing)", flush=True)
        c.request("sim.fault", {"fault": "occlusion", "k": None})
        c.events.clear()
        t, ev = 0, None
        while ev is None:
            ff(c, 1, quantum_ms=100)
            t += 1
            st = c.request("status")
            ev = next((e for e in c.events if e.get("event") == "alarm" and e.get("code") == "OCCLUSION"), None)
            if t > 1800:
                raise SystemExit(f"demo failed: no OCCLUSION alarm in {t} virtual s: {st}")
        w = c.request("sim.state")
        print(f"# alarm event after {t} virtual s: {json.dumps(ev)}")
        print(f"# line {st['pressure_pa']} Pa on the sensor, true {w['pressure_pa_true']} Pa; "
              f"motor {'enabled' if w['motor_enabled'] else 'disabled'}, halt {st['halt']}")
    step("what the clinician sees", "alarms", *p)
    with sim(port) as c:
        print("\n# sim.fault occlusion clear: the blockage goes, the line's stored volume drains", flush=True)
        c.request("sim.fault", {"fault": "occlusion", "clear": True})
        for _ in range(24):
            ff(c, 5, quantum_ms=100)
            occ = c.request("status")["line"]["occlusion"]
            if occ["state"] != "occlusion":
                break
        print(f"# detector: {occ['state']}, released {occ['released_nl'] / 1000:.2f} uL at once")
    step("acknowledge: the halt was latched until now", "ack", "OCCLUSION", *p)
    with sim(port) as c:
        ff(c, 60, quantum_ms=100)
        st = c.request("status")
        if not st["running"] or st["alarms"]:
            raise SystemExit(f"demo failed: delivery did not resume: {st['halt']} {st['alarms']}")
    step("a minute later: delivering again", "status", *p)
    step("the occlusion in the event log (safety 'cleared' = the released bolus)", "logs", "--since",
         str(seq), "--format", "table", *p)


def day_schedule(port: str, p: list[str]) -> None:
    """Refill with baclofen and its day schedule, run one virtual day, compare with the schedule."""
    with sim(port) as c:
        left_ml = c.request("status")["reservoir_nl"] / 1e6
    step("empty the morphine, fill baclofen 2 mg/mL with its day schedule (bridge bolus first)", "refill",
         "--drug", "baclofen", "--conc-ug-per-ml", "2000", "--added-ml", "20", "--removed-ml",
         f"{left_ml:.6f}", "--rx", str(FLEX.relative_to(ROOT)), *p)
    with sim(port) as c:
        st = c.request("status")
        bridge = st["therapy"]["bridge_left_nl"]
        print(f"\n# virtual clock: until the {bridge / 1000:.0f} uL bridge is through (at morphine's 1.2 mg/day, "
              f"{bridge / 120000:.1f} days), then +24 h on the schedule (sim.advance, coarse quantum)", flush=True)
        w0 = time.monotonic()
        days = 0.0
        while st["therapy"]["bridge_left_nl"] and days < 5:
            ff(c, 6 * 3600)
            days += 0.25
            st = c.request("status")
        t0, tod0 = st["delivered_total_nl"], st["tod_ms"]
        ff(c, 86400)
        wall = time.monotonic() - w0
        st = c.request("status")
        got = st["delivered_total_nl"] - t0
        day = st["therapy"]["day_volume_nl"]  # the schedule's own day volume (its four steps at 2 mg/mL)
        print(f"# ... {days + 1:.2f} virtual days took {wall:.1f} s of wall time; the 24 h from "
              f"{tod0 // 3600000:02d}:{tod0 // 60000 % 60:02d}: delivered {got / 1000:.2f} uL, the schedule asks "
              f"{day / 1000:.2f} uL ({(got - day) * 100 / day:+.2f} %); alarms {st['alarms'] or 'none'}")
        if not st["running"] or st["alarms"] or st["therapy"]["bridge_left_nl"] or abs(got - day) > day // 100:
            raise SystemExit(f"demo failed: the day schedule did not deliver: {st}")
    step("after a day on the schedule", "status", *p)
    step("what the pump is set to", "therapy", *p)


def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)  # a fresh, blank board each demo
    # the demo board gets a new device id each run: its keys stay with it, not in ~/.config/itpump/keys
    os.environ["ITPUMP_KEYS_DIR"] = str(STATE / "keys")
    d = ["--dir", str(STATE)]
    port = step("a virtual Pico: real MicroPython + simulated pump, on a pty", "vboard", "start", *d).strip()
    p = ["--port", port]
    try:
        step("copy firmware + sim board through mpremote, verify by hash, restart",
             "flash", "--board", "sim", *p)
        step("new keys: keystore on this computer, /keys.json on the board", "provision", *p)
        step("set the board's clock from this computer", "time", "sync", *p)
        step("20 mL of morphine 10 mg/mL into the reservoir", "refill", "--drug", "morphine",
             "--conc-ug-per-ml", "10000", "--added-ml", "20", "--removed-ml", "0", *p)
        step("validate, show the change, send", "program", str(RX.relative_to(ROOT)), "--yes", *p)
        advance(port, 3600)
        step("one hour later: about 4.2 uL delivered", "status", *p)
        with_pb = STATE / "morphine_with_patient_bolus.toml"
        with_pb.write_text(RX.read_text() + PATIENT_BOLUS)
        step("add a patient bolus: only the changed rows differ", "program", str(with_pb), "--yes", *p)
        step("the patient presses for a bolus (patient key)", "bolus", "--patient", *p)
        step("the event log over the link, last lines", "logs", "--format", "table", *p, tail=10)
        occlusion(port, p)
        day_schedule(port, p)
    finally:
        step("power it off (its flash image stays in .vboard/demo)", "vboard", "stop", *d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
