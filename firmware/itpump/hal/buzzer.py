# Piezo buzzer (magnetic transducer through a transistor, or a passive piezo) on a PWM pin.
from micropython import const

FREQ_MIN_HZ = const(50)  # rp2 PWM reaches ~8 Hz at 125 MHz; below 50 Hz a piezo only clicks
FREQ_MAX_HZ = const(20_000)
_HALF = const(32768)  # 50 % duty: loudest square wave
_IDLE_FREQ_HZ = const(2000)


class Buzzer:
    """tone(freq_hz) sounds until off(); the tone is held by PWM hardware, not by the loop."""

    def __init__(self, pwm):
        self._pwm = pwm
        pwm.freq(_IDLE_FREQ_HZ)  # a defined PWM period before the first duty write
        pwm.duty_u16(0)
        self.freq_hz = _IDLE_FREQ_HZ

    def tone(self, freq_hz):
        if not FREQ_MIN_HZ <= freq_hz <= FREQ_MAX_HZ:
            raise ValueError("buzzer freq_hz %d out of %d..%d" % (freq_hz, FREQ_MIN_HZ, FREQ_MAX_HZ))
        if freq_hz != self.freq_hz:
            self._pwm.freq(freq_hz)
            self.freq_hz = freq_hz
        self._pwm.duty_u16(_HALF)

    def off(self):
        self._pwm.duty_u16(0)
