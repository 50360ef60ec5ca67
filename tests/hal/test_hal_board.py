"""Watchdog clamp, reset cause marker, buzzer/LED outputs and build() of both rp2 boards, over the
machine/rp2/micropython mocks."""

import importlib.util
from pathlib import Path

import pytest

from hal_mocks import mocked_hal

ROOT = Path(__file__).resolve().parents[2]
BOARDS = {"rpi_pico": ("RP2040", 0x40058000, 0x40054000), "rpi_pico2": ("RP2350", 0x400D8000, 0x400B0000)}
CONTRACT = ("name", "clock", "serial", "reset_cause", "set_repl_lock", "motor", "pressure", "battery", "buzzer",
            "led", "button", "wdt", "calibration")


@pytest.fixture
def hw():
    with mocked_hal() as hw:
        yield hw


def _board_module(name):
    spec = importlib.util.spec_from_file_location("board", ROOT / "boards" / name / "board.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- watchdog ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("asked,set_ms", [(100, 100), (8388, 8388), (8389, 8388), (60_000, 8388), (0, 1), (-5, 1)])
def test_watchdog_clamps_to_the_rp2_limit(hw, asked, set_ms):
    from itpump.hal.watchdog import Watchdog

    w = Watchdog(0x40058000)
    assert w.start(asked) == set_ms
    w.feed()
    assert hw.machine.timeline[-2:] == [("wdt.start", set_ms), ("wdt.feed",)]


def test_watchdog_feed_before_start_does_nothing(hw):
    from itpump.hal.watchdog import Watchdog

    Watchdog(0x40058000).feed()
    assert hw.machine.timeline == []


@pytest.mark.parametrize("board,ctrl_clr", [("rpi_pico", 0x4005B000), ("rpi_pico2", 0x400DB000)])
def test_watchdog_disable_clears_ctrl_enable_of_the_boards_chip(hw, board, ctrl_clr):
    b = _board_module(board).build()
    b.wdt.start(4000)
    b.wdt.disable()
    assert hw.machine.timeline[-1] == ("mem32", ctrl_clr, 1 << 30)
    b.wdt.feed()  # a feed after disable touches nothing
    assert hw.machine.timeline[-1] == ("mem32", ctrl_clr, 1 << 30)


# -- reset cause ---------------------------------------------------------------------------------------
def test_classify_reset_cause():
    # pure function: no mocks needed beyond an importable machine
    with mocked_hal():
        from itpump.hal.resetcause import MAGIC_INTENT, MAGIC_RUNNING, classify

        assert classify(0, 1, 0, 400) == "PWRON"
        assert classify(0, 3, 0, 400) == "WDT"
        assert classify(MAGIC_RUNNING, 3, 400, 420) == "WDT"  # timer restarted: a chip reset
        assert classify(MAGIC_RUNNING, 1, 400, 395) == "PWRON"
        assert classify(MAGIC_RUNNING, 3, 400, 60_000) == "SOFT"  # timer kept running
        assert classify(MAGIC_INTENT, 3, 400, 420) == "HARD"  # machine.reset() reads as WDT on rp2


def _set_uptime_ms(hw, timer_base, ms):
    us = ms * 1000
    hw.machine.mem32.words[timer_base + 0x24] = us >> 32
    hw.machine.mem32.words[timer_base + 0x28] = us & 0xFFFFFFFF


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_reset_cause_sequence_across_boots(hw, board):
    chip, wd, timer = BOARDS[board]
    mod = _board_module(board)
    m = hw.machine
    _set_uptime_ms(hw, timer, 350)
    assert mod.build().reset_cause() == "PWRON"
    assert m.mem32[wd + 0x0C] != 0 and m.mem32[wd + 0x10] == 350

    _set_uptime_ms(hw, timer, 90 * 60 * 1000)  # soft reset 90 min later: timer kept counting (> 2**32 us)
    assert mod.build().reset_cause() == "SOFT"

    m.RESET_CAUSE = m.WDT_RESET  # the watchdog bit: timer restarted
    _set_uptime_ms(hw, timer, 360)
    assert mod.build().reset_cause() == "WDT"

    b = mod.build()
    with pytest.raises(m.MockReset):
        b.hard_reset()
    _set_uptime_ms(hw, timer, 340)
    assert mod.build().reset_cause() == "HARD"  # although reset_cause() says WDT

    m.RESET_CAUSE = m.PWRON_RESET
    m.mem32.words.clear()  # power-on clears the scratch registers and the timer
    _set_uptime_ms(hw, timer, 300)
    assert mod.build().reset_cause() == "PWRON"


# -- buzzer, LED -------------------------------------------------------------------------------------------
def test_buzzer_tone_and_off(hw):
    from itpump.hal.buzzer import Buzzer

    bz = Buzzer(hw.machine.PWM(hw.machine.Pin(15)))
    bz.tone(3000)
    bz.tone(3000)  # same tone: the frequency is not reprogrammed
    bz.off()
    pwm = [e for e in hw.machine.timeline if e[0].startswith("pwm.") and e[0] != "pwm.init"]
    assert pwm == [("pwm.freq", 15, 2000), ("pwm.duty", 15, 0),  # silent, with a defined period
                   ("pwm.freq", 15, 3000), ("pwm.duty", 15, 32768),
                   ("pwm.duty", 15, 32768), ("pwm.duty", 15, 0)]
    with pytest.raises(ValueError, match="freq_hz 10"):
        bz.tone(10)


def test_led_active_levels(hw):
    from itpump.hal.led import Led

    Pin = hw.machine.Pin
    Led(Pin(25, Pin.OUT)).value(True)
    Led(Pin(9, Pin.OUT), active=0).value(True)
    assert hw.machine.timeline[-1] == ("pin", 9, 0) and ("pin", 25, 1) in hw.machine.timeline


# -- build() of both boards ----------------------------------------------------------------------------------
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_gives_the_contract_with_safe_outputs(hw, board):
    mod = _board_module(board)
    b = mod.build()
    for member in CONTRACT:
        assert hasattr(b, member), member
    assert b.name == board and b.chip == BOARDS[board][0]
    assert b.clock is hw.time  # the time module itself (here CPython's, with rp2 ticks added)
    assert b.calibration["pl_per_step"] > 0 and b.calibration["microsteps"] == 16
    tl = hw.machine.timeline
    # the stepper driver is off from the first instant the EN pin exists, and stays off
    en_init = next(e for e in tl if e[:2] == ("pin.init", 4))
    assert en_init[4] == 1
    assert ("pin", 4, 0) not in tl
    # pins follow the carrier map
    from itpump.hal import carrier

    sm_init = next(e for e in tl if e[0] == "sm.init")
    assert ("sideset_base", carrier.STEP) in sm_init[3] and sm_init[2] == 1_000_000
    assert {e[1] for e in tl if e[0] == "adc.init"} == {0, 1}
    button = next(e for e in tl if e[:2] == ("pin.init", carrier.BUTTON))
    assert button[2:4] == (hw.machine.Pin.IN, hw.machine.Pin.PULL_UP)
    assert ("pwm.init", carrier.BUZZER) in tl
    assert not b.motor.busy() and b.button.poll() == 0


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_repl_lock_uses_kbd_intr(hw, board):
    b = _board_module(board).build()
    b.set_repl_lock(True)
    b.set_repl_lock(False)
    assert hw.micropython.kbd_intr_calls == [-1, 3]


def test_unknown_chip_is_refused(hw):
    from itpump.hal import carrier, rp2board

    with pytest.raises(ValueError, match="chip 'RP9999'"):
        rp2board.build("x", "RP9999", carrier, {})


@pytest.mark.parametrize("board", ["rpi_pico", "rpi_pico2"])
def test_the_boards_give_the_chip_id_and_the_app_refuses_a_degenerate_one(hw, board, tmp_path):
    from itpump import app

    b = _board_module(board).build()
    (tmp_path / "good").mkdir()
    (tmp_path / "zero").mkdir()
    hw.machine.UNIQUE_ID = b"\xe6\x60\x38\xb7\x13\x3a\x7a\x2f"
    assert b.unique_id() == hw.machine.UNIQUE_ID
    a = app.App(b, root=str(tmp_path / "good") + "/")
    assert a.identity.device_id == board + "-e66038b7133a7a2f"
    hw.machine.UNIQUE_ID = bytes(8)  # the emulated RP2040's
    a0 = app.App(b, root=str(tmp_path / "zero") + "/")
    assert a0.identity.device_id.startswith(board + "-") and a0.identity.device_id != board + "-" + "00" * 8
    assert (tmp_path / "zero" / "data" / "device_id").read_text() == a0.identity.device_id
