# Board definition of the virtual board, flashed as /board.py.
# Its devices come from the resident sim ROM (boards/sim/rom), which stands for the silicon.
try:
    import simrom
except ImportError:
    raise ImportError("board.py is the sim board's; this device is not the virtual board (flash the right --board)")

NAME = "sim"


class Board:
    name = NAME

    def __init__(self):
        self.clock = simrom.clock  # RP2040 tick semantics (2**30 wrap) with a speed factor
        self.serial = simrom.cdc
        self.wdt = simrom.wdt  # start(timeout_ms) / feed(), as machine.WDT on rp2

    def reset_cause(self):
        return simrom.reset_cause

    def set_repl_lock(self, locked):
        # Same effect as micropython.kbd_intr(-1 / 3) on a Pico: Ctrl-C becomes plain data.
        self.serial.interrupt_enabled = not locked


    def sim_ops(self):
        """Ops that reach the simulated world (clock, faults); only the virtual board has them."""
        return simrom.OPS


def build():
    return Board()
