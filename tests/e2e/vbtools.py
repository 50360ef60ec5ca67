"""Helpers for end-to-end tests: virtual boards and the venv's command-line tools."""

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


