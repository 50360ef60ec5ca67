# Board definition of the Raspberry Pi Pico (RP2040), flashed as /board.py.
# Wiring: itpump.hal.carrier (docs/hardware.md); drivers: itpump.hal (PIO stepper, ADC pressure, ...).
from itpump.hal import carrier, rp2board

NAME = "rpi_pico"
CHIP = "RP2040"

# This unit's calibration; the rest comes from rp2board.DEFAULT_CALIBRATION. Weigh pl_per_step
# again after any change of tubing or pump head (docs/hardware.md, calibration).
CALIBRATION = {"pl_per_step": 50_000, "pressure_offset_pa": 0}


def build():
    return rp2board.build(NAME, CHIP, carrier, CALIBRATION)
