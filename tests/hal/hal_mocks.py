"""Install the machine/rp2/micropython mocks (tests/mocks) into sys.modules for one test, and a
StateMachine backed by the rp2040-pio-emulator that runs the driver's real PIO program."""

import importlib.util
import sys
import time
import types
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pioemu import ShiftRegister, State, emulate

MOCKS = Path(__file__).resolve().parents[1] / "mocks"
_MOCKED = ("machine", "rp2", "micropython")
_TICKS_PERIOD = 1 << 30  # rp2 ticks_ms wraps here


def _time_module():
    """CPython's time plus MicroPython's ticks functions on a manual clock (advance(ms))."""
    mod = types.ModuleType("time")
    mod.__dict__.update({k: v for k, v in vars(time).items() if not k.startswith("__")})
    mod.now_ms = _TICKS_PERIOD - 1000  # just before a wrap

    def advance(ms):
        mod.now_ms = (mod.now_ms + ms) % _TICKS_PERIOD

    def ticks_diff(a, b):
        d = (a - b) % _TICKS_PERIOD
        return d - _TICKS_PERIOD if d >= _TICKS_PERIOD // 2 else d

    mod.advance = advance
    mod.ticks_ms = lambda: mod.now_ms
    mod.ticks_diff = ticks_diff
    mod.ticks_add = lambda a, d: (a + d) % _TICKS_PERIOD
    mod.sleep_ms = advance
    return mod


def _load(name):
    spec = importlib.util.spec_from_file_location(name, MOCKS / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _drop_hal_modules():
    pkg = sys.modules.get("itpump.hal")
    for name in list(sys.modules):
        if name.startswith("itpump.hal.") or name == "board":
            del sys.modules[name]
            # `from itpump.hal import x` would find the stale attribute on the package otherwise
            if pkg is not None and name.startswith("itpump.hal."):
                pkg.__dict__.pop(name.rsplit(".", 1)[1], None)


class FakeUsbCdc:
    """hal.usbcdc polls sys.stdin, which pytest captures: boards built in tests get this instead."""

    def readchar(self):
        return -1

    def wait(self, timeout_ms):
        pass

    def write(self, data):
        pass


@contextmanager
def mocked_hal(emulate_pio=False):
    """with mocked_hal() as hw:  hw.machine, hw.rp2, hw.micropython, hw.time are fresh mock modules, and
    `from itpump.hal import stepper` inside imports against them (dropped again on exit)."""
    saved = {n: sys.modules.get(n) for n in _MOCKED + ("time",)}
    _drop_hal_modules()
    hw = types.SimpleNamespace(**{n: _load(n) for n in _MOCKED})
    hw.time = _time_module()
    sys.modules.update({n: getattr(hw, n) for n in _MOCKED + ("time",)})
    usb = types.ModuleType("itpump.hal.usbcdc")
    usb.UsbCdc = FakeUsbCdc
    sys.modules["itpump.hal.usbcdc"] = usb
    if emulate_pio:
        hw.rp2.StateMachine = make_emulated_state_machine(hw.rp2, hw.machine)
    try:
        yield hw
    finally:
        _drop_hal_modules()
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def make_emulated_state_machine(rp2, machine):
    """A StateMachine class that runs its program in the PIO emulator, one cycle per 1/freq.

    run_cycles(n) advances it; every edge on its side-set pin goes to machine.timeline as
    ("pio.pin", gpio, level, cycle). exec() runs one instruction in place, as the hardware does.
    """

    class EmulatedStateMachine(rp2.StateMachine):
        def init(self, program, freq=-1, **kw):
            super().init(program, freq, **kw)
            (self.opcodes, self.wrap_target, self.wrap_top, self.side_count, opt, self.in_right,
             self.out_right) = rp2.program_info(program)
            assert not opt, "the emulator has no optional side-set"
            base = kw["sideset_base"]
            self.side_base = getattr(base, "id", base)
            self.state = State()
            self.pulls = {i for i, op in enumerate(self.opcodes) if op & 0xE080 == 0x8080}

        def _emulate(self, opcodes, state, stop_when, wrap_target, wrap_top):
            return emulate(opcodes, stop_when=stop_when, initial_state=state,
                           shift_isr_right=self.in_right, shift_osr_right=self.out_right,
                           side_set_base=self.side_base, side_set_count=self.side_count,
                           wrap_target=wrap_target, wrap_top=wrap_top)

        def _log_edges(self, before, after):
            bit = 1 << self.side_base
            if (before.pin_values ^ after.pin_values) & bit:
                self._log("pio.pin", self.side_base, int(bool(after.pin_values & bit)), after.clock)

        # the FIFOs live in the emulator state
        def put(self, value, shift=0):
            self._log("sm.put", self.id, value >> shift)
            self.state = replace(self.state, transmit_fifo=deque(self.state.transmit_fifo) + deque([value]))

        def get(self, buf=None, shift=0):
            fifo = deque(self.state.receive_fifo)
            word = fifo.popleft()
            self.state = replace(self.state, receive_fifo=fifo)
            return word >> shift

        def rx_fifo(self):
            return len(self.state.receive_fifo)

        def tx_fifo(self):
            return len(self.state.transmit_fifo)

        def exec(self, instr):
            self._log("sm.exec", self.id, instr)
            op = instr if isinstance(instr, int) else rp2.asm_pio_encode(instr, self.side_count)
            s0 = self.state
            start = replace(s0, program_counter=0)
            for before, after in self._emulate([op], start, lambda _op, s: s.clock > s0.clock, 0, 0):
                self._log_edges(before, after)
                self.state = replace(after, program_counter=s0.program_counter, clock=s0.clock)
                break

        def restart(self):
            self._log("sm.restart", self.id)
            self.state = replace(self.state, program_counter=0, input_shift_register=ShiftRegister(0, 0),
                                 output_shift_register=ShiftRegister(0, 32))

        def run_cycles(self, n):
            """Advance n SM cycles (while active); an SM stalled on an empty TX FIFO just waits."""
            end = self.state.clock + n
            if not self.running:
                self.state = replace(self.state, clock=end)
                return
            last = self.state
            for before, after in self._emulate(self.opcodes, self.state, lambda _op, s: s.clock >= end,
                                               self.wrap_target, self.wrap_top):
                self._log_edges(before, after)
                last = after
                if after.program_counter in self.pulls and not after.transmit_fifo:
                    break
            self.state = replace(last, clock=max(last.clock, end))

    return EmulatedStateMachine


def step_edges(timeline, gpio):
    """[(level, cycle)] of the PIO pin edges in a timeline."""
    return [(e[2], e[3]) for e in timeline if e[0] == "pio.pin" and e[1] == gpio]
