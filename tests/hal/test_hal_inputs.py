"""Button debounce and long press, ADC oversampling with outlier rejection, pressure conversion and
range fault, battery divider: the hal input drivers over the machine mock's Pin and ADC."""

import itertools

import pytest

from fakes import FakeClock
from hal_mocks import mocked_hal

BUTTON = 14


@pytest.fixture
def hw():
    with mocked_hal() as hw:
        yield hw


# -- button --------------------------------------------------------------------------------------
def _button(hw, clock, level=1):
    from itpump.hal.button import Button

    hw.machine.inputs[BUTTON] = level
    Pin = hw.machine.Pin
    return Button(Pin(BUTTON, Pin.IN, Pin.PULL_UP), clock)


def _run(hw, b, clock, levels_per_ms):
    """Feed one raw level per millisecond, polling every ms; return the events with their ms."""
    events = []
    for t, level in enumerate(levels_per_ms):
        hw.machine.inputs[BUTTON] = level
        e = b.poll()
        if e:
            events.append((t, e))
        clock.advance(1)
    return events


def test_short_press_reported_once_on_release_despite_bounce(hw):
    clock = FakeClock()  # starts 1 s before the 2**30 tick wrap: the press spans it
    b = _button(hw, clock)
    bounce = [0, 1, 0, 1, 1, 0, 1, 0]
    levels = [1] * 50 + bounce + [0] * 300 + bounce[::-1] + [1] * 100
    assert _run(hw, b, clock, levels) == [(50 + 8 + 300 + 8 + 30, 1)]


def test_bounce_shorter_than_debounce_is_no_press(hw):
    clock = FakeClock()
    b = _button(hw, clock)
    levels = [1] * 20 + ([0] * 10 + [1] * 3) * 5 + [1] * 100  # never 30 ms low in a row
    assert _run(hw, b, clock, levels) == []


def test_long_press_reported_while_held_and_release_is_silent(hw):
    clock = FakeClock()
    b = _button(hw, clock)
    levels = [1] * 10 + [0] * 2000 + [1] * 100
    assert _run(hw, b, clock, levels) == [(10 + 30 + 1500, 2)]


def test_button_held_at_boot_reports_nothing_until_released(hw):
    clock = FakeClock()
    b = _button(hw, clock, level=0)
    levels = [0] * 3000 + [1] * 100 + [0] * 100 + [1] * 100
    assert _run(hw, b, clock, levels) == [(3000 + 100 + 100 + 30, 1)]


def test_slow_polling_still_debounces(hw):
    clock = FakeClock(0)
    b = _button(hw, clock)
    seen = []
    for level in [1, 0, 0, 0, 1, 1]:  # one poll per 100 ms control tick
        hw.machine.inputs[BUTTON] = level
        seen.append(b.poll())
        clock.advance(100)
    assert seen == [0, 0, 0, 0, 0, 1]


# -- ADC, pressure, battery ------------------------------------------------------------------------
def _adc(hw, channel, codes, samples=16):
    from itpump.hal.adc import OversampledAdc

    hw.machine.adc_codes[channel] = iter(codes) if not callable(codes) else codes
    return OversampledAdc(hw.machine.ADC(hw.machine.Pin(26 + channel)), samples)


def test_oversampling_rejects_dnl_spikes_and_outliers(hw):
    # 16 samples around code 2000 with four wild ones (the trimmed quarter at each end drops them)
    codes = [2000, 2001, 1999, 2000, 4095, 2002, 1998, 2000, 0, 2001, 1999, 2000, 2560, 2000, 1536, 2000]
    adc = _adc(hw, 0, codes)
    assert adc.read_code() == 2000


def test_oversampling_reads_n_samples_per_call(hw):
    counter = itertools.count()
    adc = _adc(hw, 0, lambda: 1000 + next(counter) % 4, samples=8)
    assert adc.read_code() == 1002  # middle half of 1000,1001,1002,1003 x2 -> (1001*2+1002*2)/4 rounded
    assert next(counter) == 8


def test_adc_rejects_bad_sample_count(hw):
    from itpump.hal.adc import OversampledAdc

    with pytest.raises(ValueError, match="samples 2"):
        OversampledAdc(hw.machine.ADC(hw.machine.Pin(26)), 2)


def _pressure(hw, code, **kw):
    from itpump.hal.pressure import PressureSensor

    return PressureSensor(_adc(hw, 0, lambda: code), **kw)


def _code_for_sensor_mv(mv):
    # sensor mV -> divider (x2/3) -> 12-bit code at 3300 mV full scale
    return round(mv * 2 / 3 * 4095 / 3300)


def test_pressure_conversion_at_zero_mid_and_full_scale(hw):
    for sensor_mv, expect_pa in ((500, 0), (2500, 100_000), (4500, 200_000)):
        p = _pressure(hw, _code_for_sensor_mv(sensor_mv))
        assert abs(p.read_pa() - expect_pa) <= 150, sensor_mv  # one ADC code is ~60 Pa
        assert abs(p.last_mv - sensor_mv) <= 3


def test_pressure_calibration_offset_applies(hw):
    p = _pressure(hw, _code_for_sensor_mv(2500), offset_pa=-1000)
    assert abs(p.read_pa() - 99_000) <= 150


@pytest.mark.parametrize("sensor_mv", [0, 100, 240, 4760, 4950])
def test_pressure_out_of_range_is_a_sensor_fault(hw, sensor_mv):
    p = _pressure(hw, min(4095, _code_for_sensor_mv(sensor_mv)))
    with pytest.raises(ValueError, match="sensor fault"):
        p.read_pa()


def test_pressure_calibration_that_would_overflow_small_ints_is_refused(hw):
    from itpump.hal.pressure import PressureSensor

    with pytest.raises(ValueError, match="pa_per_v"):
        PressureSensor(_adc(hw, 0, lambda: 0), pa_per_v=250_000)


def test_battery_reads_through_its_divider(hw):
    from itpump.hal.battery import Battery

    b = Battery(_adc(hw, 1, lambda: round(3700 / 2 * 4095 / 3300)), 2, 1)
    assert abs(b.read_mv() - 3700) <= 3


def test_pressure_conversion_rounds_once_not_60_pa_low(hw):
    # every code of the transducer's band against the exact conversion: the pin mV and the sensor mV
    # were truncated in turn, reading 50 Pa low on average and up to 99 Pa low (about 1.6 ADC codes)
    from fractions import Fraction

    errs = []
    for code in range(_code_for_sensor_mv(260), _code_for_sensor_mv(4740)):
        p = _pressure(hw, code)
        exact = (Fraction(code * 3300 * 3, 4095 * 2) - 500) * 50
        errs.append(p.read_pa() - exact)
    assert max(abs(e) for e in errs) <= Fraction(1, 2)
    assert abs(sum(errs) / len(errs)) < 1  # no bias


def test_pressure_rounding_holds_below_the_zero_and_with_a_larger_span(hw):
    from fractions import Fraction

    for code in (300, 311, 312, 3900):
        for k in (25_000, 75_000, 113_000):
            p = _pressure(hw, code, pa_per_v=k)
            exact = (Fraction(code * 3300 * 3, 4095 * 2) - 500) * k / 1000
            assert abs(p.read_pa() - exact) <= Fraction(1, 2), (code, k)
