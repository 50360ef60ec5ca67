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
        self.rotor = simhw.SimRotor(w)  # Hall index: one rising edge per roller pass
        # Nominal calibration of the simulated head; the plant's true volume/step differs by a
        # per-unit bias, as a real head differs from its datasheet until calibrated on a scale.
        # The line model (occlusion detector) from the plant's documented nominal tubing, catheter and
        # sensor: what a bench characterisation of this line would give, not the unit's true values.
        pm = simhw.plantmod
        self.calibration = {
            "pl_per_step": pm.NOMINAL_PL_PER_STEP,
            "compliance_nl_per_kpa": int(pm.COMPLIANCE_UL_PER_KPA * 1000 + 0.5),
            "resistance_pa_s_per_ul": int(pm.RESISTANCE_KPA_S_PER_UL * 1000 + 0.5),
            # one reading is a mean of 16 conversions: the code noise / sqrt(16), in Pa
            "noise_pa": int(pm.ADC_NOISE_LSB / pm.CODES_PER_PA / 4 + 0.5),
            # the rotor index: microsteps per roller pass x 1000, and this unit's flow profile per 1/32
            # of a pass from the index edge, as its bench characterisation sheet gives it (measured, with
            # the flow meter's error: plant.profile_ppm), not the plant's true profile
            "steps_per_pass_milli": int(pm.STEPS_PER_REV * 1000 / pm.ROLLERS + 0.5),
            "index_magnets": pm.ROLLERS,
            "pulsation_ppm": w.plant.profile_ppm(),
        }

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
