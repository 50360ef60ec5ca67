# Line pressure from a ratiometric 0.5-4.5 V transducer (e.g. Honeywell PX2) through a 10k/20k divider.
# Outside the 0.25-4.75 V band the output is a fault (open wire, short, supply lost): read_pa() raises
# ValueError. Parts, wiring and calibration: docs/hardware.md.
from micropython import const

_FAULT_LOW_MV = const(250)
_FAULT_HIGH_MV = const(4750)
_INT_LIMIT = const(1 << 29)  # products stay small ints on rp2 (31-bit)
_CODE_MAX = const(4095)  # OversampledAdc: pin mV = code * vref_mv / 4095


class PressureSensor:
    """read_pa() -> gauge pressure in Pa. Calibration ints: zero_mv (output at 0 Pa), pa_per_v, offset_pa.
    The code is converted to Pa with one rounding at the end (sensor mV kept as a fraction of
    4095 x divider_den): truncating the pin mV and then the sensor mV read 50 Pa low on average."""

    def __init__(self, adc, divider_num=3, divider_den=2, zero_mv=500, pa_per_v=50_000, offset_pa=0):
        # pa_per_v 50_000: a 0-200 kPa part spans 4 V (0.5-4.5 V).
        if divider_den <= 0 or pa_per_v <= 0:
            raise ValueError("pressure divider_den and pa_per_v must be > 0")
        if _FAULT_HIGH_MV * pa_per_v >= _INT_LIMIT or 4095 * 3300 * divider_num >= _INT_LIMIT or \
                _CODE_MAX * divider_den * (pa_per_v + 1) >= 2 * _INT_LIMIT:
            raise ValueError("pressure calibration pa_per_v %d too large for integer maths" % pa_per_v)
        self._adc = adc  # an OversampledAdc
        self._num = divider_num
        self._den = divider_den
        self.zero_mv = zero_mv
        self.pa_per_v = pa_per_v
        self.offset_pa = offset_pa
        self.last_mv = 0  # sensor output of the last read, for diagnostics and calibration

    def _scaled(self):
        """Sensor output in mV times 4095 x divider_den (exact: no rounding yet)."""
        adc = self._adc
        return adc.read_code() * adc.vref_mv * self._num

    def read_mv(self):
        """Sensor output in mV (before the divider), rounded."""
        d = _CODE_MAX * self._den
        return (self._scaled() + d // 2) // d

    def read_pa(self):
        d = _CODE_MAX * self._den
        x = self._scaled()
        mv = (x + d // 2) // d
        self.last_mv = mv
        if mv < _FAULT_LOW_MV or mv > _FAULT_HIGH_MV:
            raise _out_of_band(mv)
        x -= self.zero_mv * d  # above the zero, in 1/d mV
        q = x // d
        k = self.pa_per_v  # Pa per V = mPa per mV
        mpa = q * k + ((x - q * d) * k + d // 2) // d
        return (mpa + 500) // 1000 + self.offset_pa


def _out_of_band(mv):
    """The sensor-fault error, made here: formatting it in read_pa takes its frame over 11 words."""
    return ValueError("pressure sensor output %d mV outside %d..%d mV: sensor fault"
                      % (mv, _FAULT_LOW_MV, _FAULT_HIGH_MV))
