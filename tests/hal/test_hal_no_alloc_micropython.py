"""The per-tick hal calls allocate nothing: run them under the real micropython binary with the heap
locked (micropython.heap_lock makes any allocation raise MemoryError). Fake pins/ADC/PWM and a fake
rp2 StateMachine stand in for the hardware; the drivers are the firmware's own modules. The rotor's edge
handler (a hard IRQ on the board) is called as the port's ISR calls it: the object given to pin.irq()."""

import subprocess
from pathlib import Path

from pumpctl.vboard import micropython_exe

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys
sys.path.insert(0, ROOT + "/firmware")
import micropython

class Pin:
    IN = 0
    PULL_UP = 1
    IRQ_RISING = 8
    def __init__(self, level=1):
        self.level = level
        self.handler = None
    def init(self, mode, pull):
        pass
    def irq(self, handler, trigger, hard):
        self.handler = handler
    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

class Adc:
    def __init__(self, code):
        self.code = code
    def read_u16(self):
        return (self.code << 4) | (self.code >> 8)

class Pwm:
    def freq(self, f):
        pass
    def duty_u16(self, d):
        pass

class Clock:
    now = 0
    def ticks_ms(self):
        return self.now
    def ticks_diff(self, a, b):
        return a - b

class SM:  # a state machine that completes every move at once
    def __init__(self, *a, **k):
        self.rx = 0
        self.count = 0xFFFFFF
        self.words = 0
    def active(self, v=None):
        pass
    def put(self, w):
        self.words += 1
        if self.words == 2:
            self.words = 0
    def rx_fifo(self):
        return self.rx
    def get(self):
        self.rx -= 1
        return self.count
    def exec(self, op):
        pass
    def restart(self):
        pass
    def tx_fifo(self):
        return 0

class FakeRp2:
    StateMachine = SM
    class PIO:
        OUT_LOW = 2
    @staticmethod
    def asm_pio(**kw):
        return lambda f: f
    @staticmethod
    def asm_pio_encode(s, n):
        return 0

sys.modules["rp2"] = FakeRp2

from itpump.hal.adc import OversampledAdc
from itpump.hal.pressure import PressureSensor
from itpump.hal.battery import Battery
from itpump.hal.button import Button
from itpump.hal.buzzer import Buzzer
from itpump.hal.led import Led
from itpump.hal.stepper import PioStepper
from itpump.hal.rotor import EDGE_MASK, IndexCounter

clock = Clock()
pressure = PressureSensor(OversampledAdc(Adc(1600), 16))
battery = Battery(OversampledAdc(Adc(2300), 16))
bpin = Pin(1)
button = Button(bpin, clock)
buzzer = Buzzer(Pwm())
led = Led(Pin(0))
motor = PioStepper(0, Pin(), Pin(), Pin(), Pin(0), (Pin(), Pin()))
rpin = Pin()
rotor = IndexCounter(rpin)
motor.enable(True)
sm = motor._sm
results = [0, 0, 0]
for i in range(4):  # warm up: attribute caches, first-call paths
    pressure.read_pa(); battery.read_mv(); button.poll(); buzzer.tone(2000); buzzer.off(); led.value(1)
    motor.move(7, 100); sm.count -= 7; sm.rx += 1; motor.take_confirmed(); motor.busy(); motor.fault()
    rpin.handler(rpin); rotor.edges()

def ticks(n):  # a function: its locals live on the stack, module globals would grow a dict
    total = 0
    events = 0
    for i in range(n):
        clock.now += 10
        bpin.level = 0 if 20 <= i < 60 or i >= 80 else 1  # short press, then long
        total += pressure.read_pa() + battery.read_mv()
        events += button.poll()
        buzzer.tone(2000 + (i & 1) * 500)
        buzzer.off()
        led.value(i & 1)
        motor.move(7, 100)
        sm.count -= 7
        sm.rx += 1
        total += motor.take_confirmed()
        motor.busy()
        motor.fault()
        rpin.handler(rpin)  # an index edge, as the ISR delivers it
        total += rotor.edges()
    results[0] = total  # a tuple return would allocate
    results[1] = events
    results[2] = rotor.edges()

ticks(2)
rotor._edges = EDGE_MASK - 100  # the locked run crosses the 2**30 wrap
micropython.heap_lock()
try:
    ticks(300)
finally:
    micropython.heap_unlock()
total, events, edges = results
print("OK", total > 0, edges, events)
"""


def test_per_tick_hal_calls_allocate_nothing_under_micropython():
    r = subprocess.run([micropython_exe(), "-X", "heapsize=256K", "-c", f"ROOT={str(ROOT)!r}\n" + SCRIPT],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "OK True" in r.stdout, out
    assert int(r.stdout.split()[-1]) == 1 + 2  # a short and a long press, seen with the heap locked
    assert int(r.stdout.split()[-2]) == 300 - 101  # 300 edges counted, wrapped at 2**30
