# The board object for rp2 boards (Pico, Pico 2): builds the hal drivers from a pin map and a
# calibration dict. boards/rpi_pico*/board.py hold only what differs between boards.
import time

import machine
import micropython

from itpump.hal.adc import OversampledAdc
from itpump.hal.battery import Battery
from itpump.hal.button import Button
from itpump.hal.buzzer import Buzzer
from itpump.hal.led import Led
from itpump.hal.pressure import PressureSensor
from itpump.hal.resetcause import ResetCause
from itpump.hal.rotor import IndexCounter
from itpump.hal.stepper import PioStepper
from itpump.hal.usbcdc import UsbCdc
from itpump.hal.watchdog import Watchdog

# Calibration every rp2 board starts from; board.py overrides entries (docs/hardware.md: calibration).
DEFAULT_CALIBRATION = (  # (name, value) pairs: a constant in flash, where a dict would be heap
    ("pl_per_step", 50_000),  # 0.05 uL per microstep: placeholder until weighed (docs/hardware.md)
    ("microsteps", 16),
    ("pressure_zero_mv", 500),  # sensor output at 0 Pa gauge
    ("pressure_pa_per_v", 50_000),  # 0-200 kPa over 0.5-4.5 V
    ("pressure_offset_pa", 0),
    ("pressure_divider", (3, 2)),  # sensor mV = pin mV * 3 / 2 (10k over 20k)
    ("battery_divider", (2, 1)),  # battery mV = pin mV * 2 (100k over 100k)
    ("adc_samples", 16),
    # Line model for the occlusion detector: the bench line of docs/hardware.md (same tubing and catheter
    # as the sim's plant); noise_pa is one oversampled reading's sigma, estimated from the RP2040 ADC's
    # ~8.7 ENOB: measure it per unit (pressure readings at rest, standard deviation).
    ("compliance_nl_per_kpa", 607),
    ("resistance_pa_s_per_ul", 465),
    ("noise_pa", 41),
    ("battery", "liion_1s"),
    # Rotor index sensor (docs/hardware.md): microsteps per roller pass x 1000. None = no sensor fitted,
    # and then the board has no `rotor`: the pump's silent-stall check would stop it for want of edges.
    # Set it when the sensor is fitted: 200 full steps/rev x microsteps / rollers, for the carrier's
    # 3-roller head at 16 microsteps 3200 * 1000 / 3 = 1_066_667.
    ("steps_per_pass_milli", None),
    # The unit's flow profile (32 ints, ppm of the mean, from the index edge): None = flat (docs/hardware.md)
    ("pulsation_ppm", None),
    ("index_magnets", 3),  # one per roller: the pump learns each one's placement from the gaps between edges
)

# Register blocks used for the reset-cause marker, per chip (RP2040 / RP2350 datasheets, address maps):
# (WATCHDOG_BASE, TIMER_BASE); the RP2350's is TIMER0.
CHIP_REGS = {
    "RP2040": (0x40058000, 0x40054000),
    "RP2350": (0x400D8000, 0x400B0000),
}


class Rp2Board:
    def __init__(self, name, chip, pins, calibration):
        Pin = machine.Pin
        cal = calibration
        self.name = name
        self.calibration = cal
        self.clock = time  # ticks_ms/ticks_diff/ticks_add/sleep_ms, wrapping at 2**30 on rp2
        self.chip = chip
        watchdog_base, timer_base = CHIP_REGS[chip]
        self._reset = ResetCause(watchdog_base, timer_base)
        self.serial = UsbCdc()
        self.motor = PioStepper(
            pins.STEPPER_SM,
            step_pin=Pin(pins.STEP, Pin.OUT, value=0),
            dir_pin=Pin(pins.DIR, Pin.OUT, value=0),
            en_pin=Pin(pins.EN, Pin.OUT, value=1),  # driver off from the first instant
            diag_pin=Pin(pins.DIAG, Pin.IN, Pin.PULL_UP),  # fail-safe: an open wire reads as fault
            ms_pins=(Pin(pins.MS1, Pin.OUT, value=0), Pin(pins.MS2, Pin.OUT, value=0)),
            microsteps=cal["microsteps"],
        )
        n = cal["adc_samples"]
        num, den = cal["pressure_divider"]
        self.pressure = PressureSensor(
            OversampledAdc(machine.ADC(Pin(pins.PRESSURE_ADC)), n), num, den,
            cal["pressure_zero_mv"], cal["pressure_pa_per_v"], cal["pressure_offset_pa"])
        num, den = cal["battery_divider"]
        self.battery = Battery(OversampledAdc(machine.ADC(Pin(pins.BATTERY_ADC)), n), num, den)
        self.buzzer = Buzzer(machine.PWM(Pin(pins.BUZZER)))
        self.led = Led(Pin(pins.LED, Pin.OUT))
        self.button = Button(Pin(pins.BUTTON, Pin.IN, Pin.PULL_UP), time)
        if cal.get("steps_per_pass_milli") is not None:  # only a fitted sensor (see DEFAULT_CALIBRATION)
            self.rotor = IndexCounter(Pin(pins.ROTOR), getattr(pins, "ROTOR_PULL_UP", True))
        self.wdt = Watchdog(watchdog_base)

    def reset_cause(self):
        return self._reset.cause

    def unique_id(self):
        """The flash chip's 64-bit id (the app refuses a degenerate one, e.g. all zeros)."""
        return machine.unique_id()

    def hard_reset(self):
        """Intentional reboot (the next boot reports "HARD"); motor stopped first."""
        self.motor.stop()
        self._reset.hard_reset()

    def set_repl_lock(self, locked):
        micropython.kbd_intr(-1 if locked else 3)


def build(name, chip, pins, calibration):
    """The board object; `calibration` overrides DEFAULT_CALIBRATION entry by entry."""
    if chip not in CHIP_REGS:
        raise ValueError("chip %r unknown (RP2040, RP2350)" % (chip,))
    cal = dict(DEFAULT_CALIBRATION)
    cal.update(calibration)
    for k in cal:
        v = cal[k]
        if type(v) is int:
            # Frozen, a constant tuple's ints outside +-8191 are big-int objects (mpy-tool), and every
            # product with one allocates (the pressure read, each tick): v + 0 is a small int again.
            cal[k] = v + 0
    return Rp2Board(name, chip, pins, cal)
