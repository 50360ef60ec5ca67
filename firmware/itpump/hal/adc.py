# Oversampled, outlier-rejecting reads of an RP2040/RP2350 ADC channel, in 12-bit codes and mV.
# The RP2040 ADC gives about 8.7 effective bits and has differential non-linearity spikes near codes
# 512, 1536, 2560 and 3584 (RP2040 datasheet, ADC section, INL/DNL): single reads are
# noisy and occasionally far off. Each read takes N samples, sorts them in place and averages the
# middle half (a trimmed mean), which drops spikes without the bias of a plain median on a DNL step.
from array import array

from micropython import const

VREF_MV = const(3300)  # Pico: ADC_VREF from the 3.3 V rail through a 200 ohm filter
_FULL_SCALE = const(4096)


def _sort(buf, n):
    """Insertion sort of buf[:n] in place: n is small and nothing is allocated."""
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


class OversampledAdc:
    """read_code() -> trimmed-mean 12-bit code; read_mv() -> mV at the pin. No allocation per read."""

    def __init__(self, adc, samples=16, vref_mv=VREF_MV):
        if samples < 4 or samples > 64:
            raise ValueError("samples %d out of 4..64" % samples)
        self._adc = adc
        self._buf = array("H", bytes(2 * samples))
        self._n = samples
        self._lo = samples // 4  # keep samples[lo:hi], the middle half
        self._hi = samples - samples // 4
        self._vref_mv = vref_mv
        self.vref_mv = vref_mv  # mV at code _FULL_SCALE - 1: read_code() * vref_mv / 4095 is the pin's mV

    def read_code(self):
        buf = self._buf
        self._sample()
        _sort(buf, self._n)
        total = 0
        for i in range(self._lo, self._hi):
            total += buf[i]
        kept = self._hi - self._lo
        return (total + kept // 2) // kept

    def _sample(self):
        buf = self._buf
        adc = self._adc
        for i in range(self._n):
            buf[i] = adc.read_u16() >> 4  # read_u16 scales the 12-bit result to 16 bits

    def read_mv(self):
        # max 4095 * 3300 = 13.5e6: a small int on rp2
        return self.read_code() * self._vref_mv // (_FULL_SCALE - 1)
