# The sim board's "ROM": what the silicon and MicroPython's own firmware are on a real Pico.
# Resident, never flashed: mounts the littlefs image at /, runs boot.py and main.py, and reports
# hardware events to the host bridge on stderr (docs/sim.md).
import os
import sys
import time

import vfs

import simhw
import vclock as vclockmod
from cdc import Cdc
from flashdev import FlashDev
from simwdt import SimWdt
from vclock import VClock

BOARD_NAME = "sim"
_HW_PREFIX = "\x00SIMHW "

clock = None
cdc = None
flash = None
wdt = None
world = None
reset_cause = "PWRON"
state_dir = ""


def hw_signal(msg):
    sys.stderr.write(_HW_PREFIX + msg + "\n")


def reset(cause="HARD"):
    """Hard reset: the host bridge restarts the interpreter. Never returns."""
    if world is not None:
        world.save()
    hw_signal("RESET " + cause)
    while True:
        time.sleep_ms(1000)


def _open_rw(path):
    try:
        return open(path, "r+")
    except OSError:
        open(path, "w").close()
        return open(path, "r+")


def power_on(state, cause, speed, seed=1):
    global clock, cdc, flash, wdt, world, reset_cause, state_dir
    state_dir = state
    reset_cause = cause
    if cause == "SOFT":
        sys.stdout.write("MPY: soft reboot\r\n")  # as MicroPython says it: the host waits for it
    clock = VClock(speed)
    cdc = Cdc(clock)
    wdt = SimWdt(clock, hw_signal, reset)
    flash = FlashDev(state + "/flash.bin")
    world = simhw.World(clock, _open_rw(state + "/plant.json"), seed)
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


# -- sim-only ops: the host reaches the simulated world through the firmware's link ------------------
# Each takes the request's args dict and returns a result dict; ValueError means bad arguments.


def _num(args, key, lo, hi):
    v = args.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ValueError("'%s' must be a number in %s..%s" % (key, lo, hi))
    return v


def _only(args, keys):
    for k in args:
        if k not in keys:
            raise ValueError("unknown argument '%s'" % k)


def op_clock(args):
    """Virtual clock: optionally set the speed factor; report time, speed, fast-forward state."""
    _only(args, ("speed",))
    if "speed" in args:
        clock.set_speed(_num(args, "speed", 0.001, 1000000))
    return {"virtual_ms": clock.elapsed_ms(), "speed": clock.speed, "fast_forward": clock.skipping(),
            "quantum_ms": clock.quantum_ms, "jumps": clock.jumps}


def op_advance(args):
    """Fast-forward N virtual seconds as fast as the CPU allows (poll sim.clock for the end).
    quantum_ms (default and maximum vclock.DEFAULT_QUANTUM_MS / QUANTUM_MAX_MS, under dosing.MAX_TICK_MS):
    how far one idle wait of the loop may jump, so the firmware ticks up to that far apart (never across
    the armed watchdog's deadline); 100 ticks every 100 ms."""
    _only(args, ("s", "quantum_ms"))
    q = vclockmod.DEFAULT_QUANTUM_MS
    if "quantum_ms" in args:
        q = int(_num(args, "quantum_ms", 1, vclockmod.QUANTUM_MAX_MS))
    target = clock.fast_forward(int(_num(args, "s", 0, 400 * 86400) * 1000), q)
    return {"until_virtual_ms": target, "quantum_ms": q}


def op_hang(args):
    """Hang the firmware's loop (a stuck task): only the watchdog gets the board back."""
    _only(args, ())
    while True:
        pass


def op_reset(args):
    """Press the reset button (hard reset)."""
    _only(args, ())
    reset("HARD")


def op_fault(args):
    """Inject a fault into the simulated world, or clear one (clear: true) or all (fault: "all")."""
    name = args.get("fault")
    if not isinstance(name, str):
        raise ValueError("'fault' must be one of: %s, or 'all' with clear" % ", ".join(simhw.plantmod.FAULTS))
    kw = {}
    for k in args:
        if k in ("fault", "clear"):
            continue
        v = args[k]
        if k == "k" and v is None:
            v = float("inf")
        kw[k] = v
    p = world.plant
    world.sync()
    if args.get("clear"):
        p.clear(None if name == "all" else name)
    else:
        p.inject(name, **kw)
    world.save()
    return {"faults": list(p.faults)}


def op_state(args):
    """The simulated world as a bench instrument would see it (true pressure, volumes, outputs)."""
    _only(args, ())
    return world.state()


def op_button(args):
    """Press the patient bolus button (long: true for a long press)."""
    _only(args, ("long",))
    world.button_events.append(2 if args.get("long") else 1)
    return {"queued": len(world.button_events)}


OPS = {"sim.clock": op_clock, "sim.advance": op_advance, "sim.hang": op_hang, "sim.reset": op_reset,
       "sim.fault": op_fault, "sim.state": op_state, "sim.button": op_button}
