"""Helpers for end-to-end tests: virtual boards and the venv's command-line tools."""

import contextlib
import os
import subprocess
import sys
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
