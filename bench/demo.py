"""`make demo`: start a virtual board, flash it through mpremote with pumpctl, show its status, stop it.

Each step is the pumpctl command a user would type; its output is shown as is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATE = ROOT / ".vboard" / "demo"


def step(title: str, *args: str) -> str:
    print(f"\n$ pumpctl {' '.join(args)}    # {title}", flush=True)
    r = subprocess.run([str(BIN / "pumpctl"), *args], capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"demo failed at: pumpctl {' '.join(args)}")
    return r.stdout


def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)  # a fresh, blank board each demo
    d = ["--dir", str(STATE)]
    port = step("a virtual Pico: real MicroPython + simulated pump, on a pty", "vboard", "start", *d).strip()
    try:
        step("copy firmware + sim board through mpremote, verify by hash, restart",
             "flash", "--board", "sim", "--port", port)
        step("ask the running firmware over the line protocol", "status", "--port", port)
    finally:
        step("power it off (its flash image stays in .vboard/demo)", "vboard", "stop", *d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
