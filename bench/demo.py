"""`make demo`: a virtual board from blank to running therapy, driven by the pumpctl commands a user types.

Start the virtual board, flash it through mpremote, provision keys, refill, program
examples/morphine_continuous.toml, run one virtual hour, show the status, add a patient bolus to the
prescription (the diff is shown before it is sent), press it, show the log's tail, stop.
Each step's command and its output are shown as they are.
"""

from __future__ import annotations

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
PATIENT_BOLUS = """
[patient_bolus]                  # added by the demo: 50 ug over 10 min, every 2 h at most, 4 a day
dose_ng = 50_000
duration_min = 10
lockout_min = 120
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


def advance(port: str, seconds: int) -> None:
    """Fast-forward the virtual clock (a sim-only op; the firmware keeps ticking every 100 ms)."""
    sys.path.insert(0, str(ROOT / "host_tools"))
    from pumpctl.client import Client
    from pumpctl.link import Link

    print(f"\n# virtual clock: +{seconds // 3600} h (sim.advance, as fast as the CPU allows)", flush=True)
    t0 = time.monotonic()
    with Link(port) as link:
        c = Client(link)
        c.request("sim.advance", {"s": seconds})
        while c.request("sim.clock")["fast_forward"]:
            time.sleep(0.05)
    print(f"# ... took {time.monotonic() - t0:.1f} s of wall time")


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
    finally:
        step("power it off (its flash image stays in .vboard/demo)", "vboard", "stop", *d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
