"""Rotor index sensor on the rp2 boards: hal.rotor.IndexCounter over the machine mock's Pin (a hard IRQ on
rising edges, the pull-up, the 2**30 wrap within 31-bit small ints), rp2board building it only when the
calibration says a sensor is fitted, and a Pump over the mocked board reading it (edges, silent stall)."""

import importlib.util
from pathlib import Path

import pytest

from hal_mocks import mocked_hal

ROOT = Path(__file__).resolve().parents[2]
ROTOR = 16
DIAG = 7
MASK = (1 << 30) - 1
SMALL_MIN, SMALL_MAX = -(1 << 30), (1 << 30) - 1  # RP2040 small ints (31-bit)


@pytest.fixture
def hw():
    with mocked_hal() as hw:
        yield hw


def _counter(hw, **kw):
    from itpump.hal.rotor import IndexCounter

    return IndexCounter(hw.machine.Pin(ROTOR), **kw)


def _pass(hw, n=1):
    """n magnets pass an active-low switch: low while near, high again as each leaves."""
    for _ in range(n):
        hw.machine.drive(ROTOR, 0)
        hw.machine.drive(ROTOR, 1)


# -- driver ----------------------------------------------------------------------------------------
def test_counts_rising_edges_only_through_a_hard_irq(hw):
    c = _counter(hw)
    Pin, pin = hw.machine.Pin, hw.machine.pins[ROTOR]
    assert (pin.mode, pin.pull) == (Pin.IN, Pin.PULL_UP)
    assert (pin.irq_trigger, pin.irq_hard) == (Pin.IRQ_RISING, True)
    assert pin.irq_handler is c._handler  # the one bound method made in __init__
    assert c.edges() == 0
    _pass(hw, 3)
    assert c.edges() == 3
    hw.machine.drive(ROTOR, 0)  # a magnet arriving (falling edge) is not a pass
    assert c.edges() == 3
    hw.machine.drive(ROTOR, 1)
    assert c.edges() == 4


def test_pull_up_only_when_asked(hw):
    _counter(hw, pull_up=False)
    assert hw.machine.pins[ROTOR].pull is None  # no pull: a push-pull switch drives the line itself


def test_count_wraps_at_2_30_and_the_pump_difference_holds_across_it(hw):
    from itpump.rotor import ROTOR_MASK

    c = _counter(hw)
    c._edges = MASK - 1
    _pass(hw)
    assert c.edges() == MASK
    _pass(hw, 2)
    assert c.edges() == 1
    assert (c.edges() - (MASK - 1)) & ROTOR_MASK == 3 and ROTOR_MASK == MASK


class Small31(int):
    """An int that fails where the RP2040 would allocate: arithmetic leaving its 31-bit small-int range."""

    def _op(name):  # builds the methods below (called in the class body)
        def op(self, other):
            r = getattr(int(self), name)(int(other))
            if not SMALL_MIN <= r <= SMALL_MAX:
                raise OverflowError(f"{name} -> {r}: a big int (heap allocation) on the RP2040")
            return Small31(r)
        return op

    __add__ = __radd__ = _op("__add__")
    __sub__ = _op("__sub__")
    __and__ = __rand__ = _op("__and__")


def test_the_irq_handler_stays_within_31_bit_small_ints_at_the_wrap(hw):
    # heap_lock on the unix port (test_hal_no_alloc_micropython) cannot see this: its small ints are 63-bit
    c = _counter(hw)
    c._edges = Small31(MASK - 2)
    _pass(hw, 3)
    assert c.edges() == 0
    _pass(hw)
    assert c.edges() == 1


# -- rp2 boards ------------------------------------------------------------------------------------------
def _board_module(name):
    spec = importlib.util.spec_from_file_location("board", ROOT / "boards" / name / "board.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("board", ["rpi_pico", "rpi_pico2"])
def test_boards_without_steps_per_pass_milli_have_no_rotor(hw, board):
    b = _board_module(board).build()
    assert b.calibration["steps_per_pass_milli"] is None and b.calibration["pulsation_ppm"] is None
    assert not hasattr(b, "rotor")
    assert ROTOR not in hw.machine.pins  # the unfitted sensor's GPIO is left alone


@pytest.mark.parametrize("chip", ["RP2040", "RP2350"])
def test_steps_per_pass_milli_fits_the_rotor_on_the_carrier_pin(hw, chip):
    from itpump.hal import carrier, rp2board

    b = rp2board.build("x", chip, carrier, {"steps_per_pass_milli": 1_066_667})
    Pin, pin = hw.machine.Pin, hw.machine.pins[carrier.ROTOR]
    assert carrier.ROTOR == ROTOR and pin.pull == Pin.PULL_UP and pin.irq_hard
    assert ("pin.irq", ROTOR, Pin.IRQ_RISING, True) in hw.machine.timeline
    _pass(hw, 2)
    assert b.rotor.edges() == 2


def test_the_carrier_rotor_pin_is_free():
    from itpump.hal import carrier

    used = {v for k, v in vars(carrier).items() if k.isupper() and k not in ("ROTOR", "ROTOR_PULL_UP", "STEPPER_SM")}
    assert carrier.ROTOR not in used


# -- a Pump over the mocked board ----------------------------------------------------------------------------
SPP_MILLI = 40_000  # a short pass (40 microsteps) keeps the test fast; the logic is the same at 1_066_667
# 40000 nL/h at 1 nL per step: 11 steps/s, a pass every 3.6 s
RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 9600000}


class InstantSM:
    """Completes the stepper's queued moves at once: pushes the count the PIO would (it counts down)."""

    def __init__(self, sm):
        self.sm = sm
        self.count = 0xFFFFFF

    def run(self):
        sm = self.sm
        while len(sm.tx) >= 2:
            steps = sm.tx.pop(0)
            sm.tx.pop(0)
            self.count = (self.count - steps) & 0xFFFFFF
            sm.rx.append(self.count)
            yield steps


def _pump(hw, cal):
    from itpump import alarms, pump, store
    from itpump.hal import carrier, rp2board
    from itpump.therapy import Therapy

    hw.machine.inputs[DIAG] = 0  # driver healthy
    hw.machine.adc_codes[0] = lambda: 1000 + (len(hw.machine.timeline) & 3)  # ~35 kPa, a little noise
    hw.machine.adc_codes[1] = lambda: 2300
    b = rp2board.build("x", "RP2040", carrier, dict(cal, pl_per_step=1000))
    al = alarms.AlarmManager(b.clock)
    p = pump.Pump(b, al, b.calibration["pl_per_step"], None, b.calibration)  # as app.App passes them
    p.reservoir.refill("morphine", 10000, 20_000_000, 0)
    p.reserved_nl = store.mark_ahead(p, p.delivered_nl, store.RESERVE_MS)
    p.therapy = Therapy(RX)
    return b, p, al


def _run(hw, b, p, ticks, edge_every_steps=0):
    """Ticks of 100 ms; the rotor gives an edge every edge_every_steps confirmed steps (0: none)."""
    from itpump import store

    sm = InstantSM(b.motor._sm)
    steps = 0
    for _ in range(ticks):
        hw.time.advance(100)
        p.tick(hw.time.ticks_ms())
        for n in sm.run():
            for _ in range(n):
                steps += 1
                if edge_every_steps and steps % edge_every_steps == 0:
                    _pass(hw)
        if p.need_save or p.need_mark:
            p.reserved_nl = store.mark_ahead(p, p.delivered_nl, store.RESERVE_MS)
            p.need_save = p.need_mark = False
    return steps


def test_pump_reads_the_rp2_rotor_and_paces_by_the_profile(hw):
    from itpump import alarms

    prof = [20000 * (1 if i < 16 else -1) for i in range(32)]
    b, p, al = _pump(hw, {"steps_per_pass_milli": SPP_MILLI, "pulsation_ppm": prof})
    assert p.rotor is b.rotor and p.dosing.spp_milli == SPP_MILLI and p.dosing.profile_ppm == tuple(prof)
    steps = _run(hw, b, p, 600, edge_every_steps=40)  # 60 s
    assert steps > 5 * 40 and p.halt == 0 and not al.is_active(alarms.STALL)
    assert p.idx.edges == b.rotor.edges() == steps // 40 and p.idx.early == 0
    assert p.dosing.phase_known


def test_pump_over_the_rp2_board_stops_a_silent_stall(hw):
    from itpump import alarms, halts

    b, p, al = _pump(hw, {"steps_per_pass_milli": SPP_MILLI})  # no profile: flat, the stall check still runs
    assert p.dosing.profile_ppm is None
    steps = _run(hw, b, p, 600)  # the driver confirms every step, the rotor never turns
    assert p.halt & halts.H_STALL and al.is_active(alarms.STALL)
    assert SPP_MILLI * 5 // 4000 < steps <= SPP_MILLI * 5 // 4000 + 2  # within a tick (1-2 steps) of 5/4 pass


def test_pump_over_the_rp2_board_without_the_sensor_ignores_the_none_keys(hw):
    from itpump import halts

    b, p, al = _pump(hw, {})
    assert p.rotor is None and p.dosing.spp_milli == 0
    steps = _run(hw, b, p, 600)  # no edges, and no stall: without a sensor there is no such check
    assert steps > 2 * 50 and p.halt == 0 and halts.H_STALL & p.halt == 0


@pytest.mark.parametrize("cal,problem", [({}, None), ({"steps_per_pass_milli": 1_066_667}, None),
                                         ({"steps_per_pass_milli": 5}, "steps_per_pass_milli = 5")])
def test_app_over_the_rp2_board_passes_the_rotor_calibration(hw, tmp_path, cal, problem):
    from itpump import app, halts
    from itpump.hal import carrier, rp2board

    hw.machine.inputs[DIAG] = 0
    hw.machine.adc_codes[0] = lambda: 1000
    hw.machine.adc_codes[1] = lambda: 2300
    b = rp2board.build("x", "RP2040", carrier, cal)
    a = app.App(b, root=str(tmp_path) + "/")
    if problem is None:  # the DEFAULT_CALIBRATION's None keys are harmless; a fitted sensor reaches the pump
        assert a.cal_problem is None and a.pump.halt == 0
        assert a.pump.rotor is getattr(b, "rotor", None)
        assert a.pump.dosing.spp_milli == (cal.get("steps_per_pass_milli") or 0)
    else:  # a bad pass length: no rotor, and no delivery while the calibration is bad (Pump.release)
        assert problem in a.cal_problem and a.pump.halt & halts.H_INTERNAL and a.pump.rotor is None
