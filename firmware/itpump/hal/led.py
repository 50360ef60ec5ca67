# Status LED on a GPIO (the Pico's onboard LED is GP25, active high).


class Led:
    def __init__(self, pin, active=1):
        self._pin = pin
        self._active = active
        pin.value(1 - active)

    def value(self, on):
        self._pin.value(self._active if on else 1 - self._active)
