# Board definition of the virtual board, flashed as /board.py.
# Its devices come from the resident sim ROM (boards/sim/rom), which stands for the silicon.
try:
    import simhw
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
        w = simrom.world
        self.motor = w.motor
        self.pressure = simhw.SimPressure(w)
        self.battery = simhw.SimBattery(w)
        self.buzzer = simhw.SimBuzzer(w)
        self.led = simhw.SimLed(w)
        self.button = simhw.SimButton(w)
        # Nominal calibration of the simulated head; the plant's true volume/step differs by a
        # per-unit bias, as a real head differs from its datasheet until calibrated on a scale.
        self.calibration = {"pl_per_step": simhw.plantmod.NOMINAL_PL_PER_STEP}

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
