# Board definition of the Raspberry Pi Pico 2 (RP2350), flashed as /board.py.
# Pin compatible with the Pico, so the same carrier wiring: itpump.hal.carrier. RP2350 erratum E9
# (an input with the internal pull-down can latch near 2.2 V) is why no input there uses a pull-down.
from itpump.hal import carrier, rp2board

NAME = "rpi_pico2"
CHIP = "RP2350"

# This unit's calibration (its own head and tubing); the rest: rp2board.DEFAULT_CALIBRATION.
CALIBRATION = {"pl_per_step": 50_000, "pressure_offset_pa": 0}


def build():
    return rp2board.build(NAME, CHIP, carrier, CALIBRATION)
