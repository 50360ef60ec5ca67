"""PioStepper pin and PIO traffic, recorded by the machine/rp2 mocks: order of EN, DIR and the
first step, disable after the move, queue limits, bad input."""

import pytest

from hal_mocks import mocked_hal

STEP, DIR, EN, MS1, MS2, DIAG = 2, 3, 4, 5, 6, 7


@pytest.fixture
def hw():
    with mocked_hal(emulate_pio=True) as hw:
        yield hw


def _motor(hw, **kw):
    from itpump.hal.stepper import PioStepper

    Pin = hw.machine.Pin
    return PioStepper(0, Pin(STEP, Pin.OUT), Pin(DIR, Pin.OUT), Pin(EN, Pin.OUT), Pin(DIAG, Pin.IN, Pin.PULL_UP),
                      (Pin(MS1, Pin.OUT), Pin(MS2, Pin.OUT)), **kw)


def _first(timeline, pred):
    for i, e in enumerate(timeline):
        if pred(e):
            return i
    raise AssertionError("no such event in timeline")


def _last(timeline, pred):
    return max(i for i, e in enumerate(timeline) if pred(e))


def test_enable_and_direction_precede_the_first_step_and_disable_follows_the_move(hw):
    m = _motor(hw)
    m.enable(True)
    tl = hw.machine.timeline
    assert ("pin", EN, 0) not in tl  # enabling alone does not power the driver
    m.move(5, 20)
    m._sm.run_cycles(300)
    assert m.take_confirmed() == 5
    first_put = _first(tl, lambda e: e[0] == "sm.put")
    first_edge = _first(tl, lambda e: e[0] == "pio.pin" and e[2] == 1)
    en_on = _first(tl, lambda e: e == ("pin", EN, 0))
    dir_fwd = _last(tl[:first_put], lambda e: e[:2] == ("pin", DIR))
    assert tl[dir_fwd] == ("pin", DIR, 1)
    assert dir_fwd < en_on < first_put < first_edge
    last_edge = _last(tl, lambda e: e[0] == "pio.pin")
    assert tl[-1] == ("pin", EN, 1) and len(tl) - 1 > last_edge  # driver off after the last pulse


def test_driver_starts_disabled_with_microsteps_set(hw):
    _motor(hw, microsteps=16)
    tl = hw.machine.timeline
    en_off = _first(tl, lambda e: e == ("pin", EN, 1))
    sm_on = _first(tl, lambda e: e[0] == "sm.active")
    assert en_off < sm_on
    assert ("pin", MS1, 1) in tl and ("pin", MS2, 1) in tl  # TMC2209: MS1=MS2=VCC_IO -> 16


def test_microstep_table_and_bad_setting(hw):
    from itpump.hal.stepper import microstep_levels

    assert [microstep_levels(n) for n in (8, 16, 32, 64)] == [(0, 0), (1, 1), (1, 0), (0, 1)]
    with pytest.raises(ValueError, match="microsteps 4"):
        microstep_levels(4)


def test_driver_stays_enabled_between_queued_moves(hw):
    m = _motor(hw)
    m.enable(True)
    m.move(3, 20)
    m.move(3, 20)
    m._sm.run_cycles(70)  # first move done, second running
    m.take_confirmed()
    assert hw.machine.pins[EN].value() == 0
    m._sm.run_cycles(200)
    assert m.take_confirmed() == 3 and hw.machine.pins[EN].value() == 1


def test_move_refuses_bad_input_and_changes_nothing(hw):
    m = _motor(hw)
    with pytest.raises(ValueError, match="not enabled"):
        m.move(5, 20)
    m.enable(True)
    n = len(hw.machine.timeline)
    for steps, period in ((0, 20), (-3, 20), (1 << 21, 20), (5, 9), (5, 1_000_001)):
        with pytest.raises(ValueError):
            m.move(steps, period)
    assert hw.machine.timeline[n:] == []  # nothing reached a pin or the PIO
    m.move(1, 20)
    m.move(1, 20)
    with pytest.raises(ValueError, match="queue full"):
        m.move(1, 20)


def test_enable_false_stops_and_disables(hw):
    m = _motor(hw)
    m.enable(True)
    m.move(50, 20)
    m._sm.run_cycles(100)
    m.enable(False)
    assert hw.machine.pins[EN].value() == 1 and not m.busy()
    assert 0 < m.take_confirmed() < 50
    with pytest.raises(ValueError):
        m.move(1, 20)


def test_fault_follows_diag(hw):
    m = _motor(hw)
    hw.machine.inputs[DIAG] = 0
    assert not m.fault()
    hw.machine.inputs[DIAG] = 1
    assert m.fault()


def test_stop_sequence_on_the_recording_mock():
    """The stop path without the emulator: SM halted, driver off, counter read, SM restarted."""
    with mocked_hal() as hw:
        m = _motor(hw)
        m.enable(True)
        m.move(10, 20)
        m._sm.pushes.append(0xFFFFFF - 4)  # what the exec'd push reads: 4 pulses emitted
        m.stop()
        tl = hw.machine.timeline
        i_off = _last(tl, lambda e: e == ("pin", EN, 1))
        i_halt = _last(tl, lambda e: e == ("sm.active", 0, 0))
        i_exec = _first(tl, lambda e: e[0] == "sm.exec")
        i_restart = _first(tl, lambda e: e[0] == "sm.restart")
        assert i_halt < i_off < i_exec < i_restart
        assert tl[-1] == ("sm.active", 0, 1)
        assert m.take_confirmed() == 4
        assert m._sm.tx == []  # the queued words were pulled away


def test_stop_confirms_only_pulses_the_enabled_driver_saw(hw):
    """The PIO runs on while stop() executes: a pulse it emits after EN went inactive moves nothing (the
    driver ignores STEP while disabled) yet would be confirmed. stop() halts the SM before it disables EN."""
    m = _motor(hw)
    m.enable(True)
    m.move(50, 20)  # 20 us period: 20 SM cycles per pulse
    m._sm.run_cycles(95)
    en = hw.machine.pins[EN]
    set_level = en.value

    def en_value(v=None):  # the hardware keeps stepping while the CPU runs stop()'s next lines
        r = set_level(v)
        if v is not None:
            m._sm.run_cycles(25)
        return r

    en.value = en_value
    m.stop()
    tl = hw.machine.timeline
    enabled = False
    seen = 0
    for e in tl:
        if e[:2] == ("pin", EN):
            enabled = e[2] == 0
        elif e[0] == "pio.pin" and e[1] == STEP and e[2] == 1 and enabled:
            seen += 1
    assert m.take_confirmed() == seen
