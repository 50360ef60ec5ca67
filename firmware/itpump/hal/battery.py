# Battery voltage through a resistor divider on an ADC pin (oversampled like every analog input).


class Battery:
    """read_mv() -> battery voltage in mV; divider_num/divider_den scales pin mV back to battery mV."""

    def __init__(self, adc, divider_num=2, divider_den=1):
        self._adc = adc  # an OversampledAdc
        self._num = divider_num
        self._den = divider_den

    def read_mv(self):
        return self._adc.read_mv() * self._num // self._den
