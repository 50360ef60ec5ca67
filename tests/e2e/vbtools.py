"""Helpers for end-to-end tests: virtual boards and the venv's command-line tools."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from pumpctl import vboard

BIN = Path(sys.executable).parent


def run(*args, timeout=60, check=False):
    """Run a CLI tool from the venv (pumpctl, mpremote); returns CompletedProcess with text output."""
    r = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class VBoard:
    def __init__(self, directory: Path, speed: float = 1.0):
        self.dir = directory
        self.speed = speed
        self.port = None

    def start(self):
        self.port = vboard.start(self.dir, speed=self.speed)
        return self.port

    def stop(self):
        vboard.stop(self.dir)




@contextlib.contextmanager
def pumpctl_env(keys_dir: Path, board: VBoard):
    """A started board as pumpctl's default port and keys_dir as its keystore, restored afterwards."""
    names = ("ITPUMP_KEYS_DIR", "ITPUMP_KEYS", "ITPUMP_PORT")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["ITPUMP_KEYS_DIR"] = str(keys_dir)
    os.environ.pop("ITPUMP_KEYS", None)
    board.start()
    os.environ["ITPUMP_PORT"] = board.port
    try:
        yield board
    finally:
        board.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def install_keys(port: str, keys_root: Path):
    """Fresh keys for the flashed board on port: keystore under keys_root, /keys.json written with
    mpremote (the board at rest), firmware restarted. Returns the Keystore that signs for it."""
    from pumpctl import keys
    from pumpctl.client import Client
    from pumpctl.link import Link
    from pumpctl.mpr import Device

    with Link(port) as link:
        dev_id = Client(link).wait_ready(10)["device_id"]
    ks = keys.provision(dev_id, root=keys_root)
    with Device(port) as dev:
        dev.write_file("/keys.json", ks.device_file())
    run("pumpctl", "restart", "--port", port, check=True)
    return ks


# -- a therapy-running board for the safety and fault tests --------------------------------------
RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}  # 0.96 mL/day: ~0.74 steps/s of 15 nL
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}
CHUNK_S = 10  # virtual seconds per fast-forward chunk (the detection time's resolution)


def keyed_board(tmp_path_factory):
    """A started, flashed virtual board with keys on it (/keys.json); its Keystore as .ks."""
    b = VBoard(tmp_path_factory.mktemp("vb"))
    b.start()
    run("pumpctl", "flash", "--board", "sim", "--port", b.port, "--quiet", check=True)
    b.ks = install_keys(b.port, tmp_path_factory.mktemp("keys"))
    return b


def advance(c, s, quantum_ms=100):
    """Fast-forward s virtual seconds and wait for the end. quantum_ms: how far apart the firmware's
    ticks run (100: every tick, the detector's statistics work; longer: the sim's fast mode, where
    they are skipped and only the gross pressure limit can call an occlusion)."""
    c.request("sim.advance", {"s": s, "quantum_ms": quantum_ms})
    deadline = time.monotonic() + 60
    while c.request("sim.clock")["fast_forward"]:
        assert time.monotonic() < deadline, "fast-forward did not end"
        time.sleep(0.02)


def until(c, cond, max_s, quantum_ms=100, chunk_s=CHUNK_S):
    """Advance in chunk_s steps until cond(status); returns (virtual seconds it took, status)."""
    t = 0
    while t < max_s:
        advance(c, chunk_s, quantum_ms)
        t += chunk_s
        st = c.request("status")
        if cond(st):
            return t, st
    raise AssertionError(f"not within {max_s} virtual s: {c.request('status')}\nevents {c.events}")


def raised(c, code):
    """The board sent the unsolicited raise event of alarm `code` (seen by this client)."""
    return any(e.get("event") == "alarm" and e.get("kind") == "raise" and e.get("code") == code for e in c.events)
