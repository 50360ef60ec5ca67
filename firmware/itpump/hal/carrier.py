# Pin map of the itpump carrier wiring for a Pico-footprint module. The Pico (RP2040) and Pico 2
# (RP2350) are pin compatible, so both boards share this one map (docs/hardware.md, wiring table).
# A custom board passes its own object with these attribute names to rp2board.build().
STEP = 2  # driver STEP (PIO side-set)
DIR = 3  # driver DIR
EN = 4  # driver EN, active low (TMC2209 ENN, DRV8825 nENBL)
MS1 = 5  # microstep select (TMC2209 standalone)
MS2 = 6
DIAG = 7  # driver DIAG (TMC2209, push-pull, active high); pulled up: an open wire reads as a fault
BUTTON = 14  # bolus button to GND, internal pull-up
BUZZER = 15  # PWM slice 7 channel B
ROTOR = 16  # rotor index Hall switch (optional; used only with steps_per_pass_milli in the calibration)
ROTOR_PULL_UP = True  # internal pull-up on ROTOR: an open-drain switch output (e.g. DRV5032 open-drain versions)
LED = 25  # onboard LED (Pico; on a Pico W the LED is on the wireless chip)
PRESSURE_ADC = 26  # ADC0: pressure sensor output through a 10k/20k divider (x2/3)
BATTERY_ADC = 27  # ADC1: battery through a 1:2 divider (100k/100k)
STEPPER_SM = 0  # PIO0 state machine 0
