# The sim board's "ROM": what the silicon and MicroPython's own firmware are on a real Pico.
#
# Not flashed: the host launches it (boards/sim/rom/poweron.py) and it stays resident, the way a
# Pico's MicroPython sits below the files on its flash. It mounts the littlefs flash image at /,
# runs boot.py and main.py from it, and reports hardware events (resets) to the host bridge on
# stderr, an out-of-band line the firmware never sees.
import os
import sys
import time

import vfs
from cdc import Cdc
from flashdev import FlashDev
from vclock import VClock

BOARD_NAME = "sim"
_HW_PREFIX = "\x00SIMHW "

clock = None
cdc = None
flash = None
reset_cause = "PWRON"
state_dir = ""


def hw_signal(msg):
    sys.stderr.write(_HW_PREFIX + msg + "\n")


def reset(cause="HARD"):
    """Hard reset: the host bridge restarts the interpreter. Never returns."""
    hw_signal("RESET " + cause)
    while True:
        time.sleep_ms(1000)


def power_on(state, cause, speed):
    global clock, cdc, flash, reset_cause, state_dir
    state_dir = state
    reset_cause = cause
    clock = VClock(speed)
    cdc = Cdc(clock)
    flash = FlashDev(state + "/flash.bin")
    try:
        fs = vfs.VfsLfs2(flash)
    except OSError:
        # Blank (or unreadable) flash: format it, as the rp2 port does on first boot.
        vfs.VfsLfs2.mkfs(flash)
        fs = vfs.VfsLfs2(flash)
    vfs.umount("/")  # drop the host filesystem: from here on only the flash is visible
    vfs.mount(fs, "/")
    os.chdir("/")
    sys.path.clear()
    sys.path.append("")
    sys.path.append("/lib")


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def run_flash_scripts():
    """Run boot.py then main.py from flash like the rp2 port; any error falls through to the REPL."""
    for name in ("boot.py", "main.py"):
        if not _exists(name):
            continue
        try:
            with open(name) as f:
                src = f.read()
            exec(src, {"__name__": "__main__", "__file__": name})
        except KeyboardInterrupt:
            print("KeyboardInterrupt in " + name)
            return
        except Exception as e:
            sys.print_exception(e, sys.stdout)
            return
