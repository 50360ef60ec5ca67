"""A stand-in for MicroPython's `rp2` for CPython unit tests: a PIO assembler (asm_pio) written from the
RP2040 datasheet, and a StateMachine that records what the driver does with it."""

import types
from array import array

PROG_DATA = 0
PROG_EXECCTRL = 3
PROG_SHIFTCTRL = 4
PROG_SIDESET_INIT = 7


class PIO:
    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2


class PIOASMError(Exception):
    pass


class _Flag:
    """push/pull modifiers: block, noblock, iffull/ifempty."""

    def __init__(self, bits, blocking):
        self.bits = bits
        self.blocking = blocking


class _Src:
    """A mov source with its operation (invert, reverse) in bits 4:3."""

    def __init__(self, index, op=0):
        self.index = index
        self.op = op


def _index(v):
    return v.index if isinstance(v, _Src) else v


class _Emitter:
    def __init__(self, sideset_count, sideset_opt, delay_bits):
        self.sideset_count = sideset_count  # pins, not counting the opt bit
        self.sideset_opt = sideset_opt
        self.delay_bits = delay_bits
        self.code = []
        self.has_side = []
        self.labels = {}
        self.wrap_target_at = None
        self.wrap_at = None
        self.resolve = False  # second pass: labels known

    # instruction plumbing --------------------------------------------------------------
    def _emit(self, word):
        self.code.append(word)
        self.has_side.append(False)
        return self

    def side(self, value):
        if self.sideset_count == 0:
            raise PIOASMError("side() without sideset_init")
        if value >= 1 << self.sideset_count:
            raise PIOASMError(f"side-set value {value} too large")
        bits = self.sideset_count + (1 if self.sideset_opt else 0)
        field = value << (5 - bits)
        if self.sideset_opt:
            field |= 0x10  # the enable bit is the MSB of the delay/side-set field
        self.code[-1] |= field << 8
        self.has_side[-1] = True
        return self

    def __getitem__(self, delay):
        if delay >= 1 << self.delay_bits:
            raise PIOASMError(f"delay {delay} too large")
        self.code[-1] |= delay << 8
        return self

    def _target(self, label):
        if isinstance(label, int):
            return label
        if not self.resolve:
            return 0
        if label not in self.labels:
            raise PIOASMError(f"unknown label {label!r}")
        return self.labels[label]

    # directives -------------------------------------------------------------------------
    def label(self, name):
        if not self.resolve:
            if name in self.labels:
                raise PIOASMError(f"duplicate label {name!r}")
            self.labels[name] = len(self.code)

    def wrap_target(self):
        self.wrap_target_at = len(self.code)

    def wrap(self):
        self.wrap_at = len(self.code) - 1

    # instructions (RP2040 datasheet 3.4, opcode bits 15:13) -------------------------------
    def jmp(self, cond, label=None):
        if label is None:
            cond, label = 0, cond
        return self._emit(0x0000 | cond << 5 | self._target(label))

    def wait(self, polarity, src, index):
        return self._emit(0x2000 | polarity << 7 | src << 5 | index)

    def in_(self, src, count):
        return self._emit(0x4000 | _index(src) << 5 | (count & 0x1F))

    def out(self, dest, count):
        return self._emit(0x6000 | dest << 5 | (count & 0x1F))

    def push(self, *flags):
        return self._emit(0x8000 | self._fifo_bits(flags))

    def pull(self, *flags):
        return self._emit(0x8080 | self._fifo_bits(flags))

    @staticmethod
    def _fifo_bits(flags):
        bits, blocking = 0, True  # blocking unless noblock is given
        for f in flags:
            bits |= f.bits
            blocking = blocking and f.blocking
        return bits | (0x20 if blocking else 0)

    def mov(self, dest, src):
        s = src if isinstance(src, _Src) else _Src(src)
        return self._emit(0xA000 | dest << 5 | s.op << 3 | s.index)

    def nop(self):
        return self.mov(2, 2)  # mov y, y

    def irq(self, index):
        return self._emit(0xC000 | index)

    def set(self, dest, data):
        return self._emit(0xE000 | dest << 5 | data)

    def dsl(self):
        g = {
            "pins": 0, "x": 1, "y": 2, "null": 3, "pindirs": 4, "pc": 5, "status": 5, "isr": 6, "osr": 7,
            "invert": lambda s: _Src(_index(s), 1), "reverse": lambda s: _Src(_index(s), 2),
            "not_x": 1, "x_dec": 2, "not_y": 3, "y_dec": 4, "x_not_y": 5, "pin": 6, "not_osre": 7,
            "block": _Flag(0, True), "noblock": _Flag(0, False),
            "iffull": _Flag(0x40, True), "ifempty": _Flag(0x40, True),
        }
        for name in ("label", "wrap_target", "wrap", "jmp", "wait", "in_", "out", "push", "pull", "mov",
                     "nop", "irq", "set"):
            g[name] = getattr(self, name)
        # mov's sources share numbers with destinations; wrap them so invert()/reverse() work on them
        return g


def _sideset_pins(sideset_init):
    if sideset_init is None:
        return 0
    return len(sideset_init) if isinstance(sideset_init, (tuple, list)) else 1


def asm_pio(*, out_init=None, set_init=None, sideset_init=None, side_pindir=False,
            in_shiftdir=PIO.SHIFT_LEFT, out_shiftdir=PIO.SHIFT_LEFT, autopush=False, autopull=False,
            push_thresh=32, pull_thresh=32, fifo_join=PIO.JOIN_NONE):
    """Assembles the program the way the board does, independently written from the RP2040 datasheet's
    instruction encoding (section 3.4): runs the decorated function twice (labels, then code) with the
    PIO DSL names as its globals and returns the same list shape MicroPython returns: [opcodes, -1, -1,
    execctrl, shiftctrl, out_init, set_init, sideset_init]. The opcodes can then be run in the
    rp2040-pio-emulator (tests/hal/hal_mocks.py), so the PIO program exists only in the driver."""

    def dec(f):
        count = _sideset_pins(sideset_init)
        # pass 1: labels, and whether every instruction has a side-set (else it is optional)
        first = _Emitter(count, False, 5 - count)
        types.FunctionType(f.__code__, dict(first.dsl(), __builtins__=__builtins__))()
        opt = count > 0 and not all(first.has_side)
        second = _Emitter(count, opt, 5 - count - (1 if opt else 0))
        second.labels = first.labels
        second.resolve = True
        types.FunctionType(f.__code__, dict(second.dsl(), __builtins__=__builtins__))()
        wrap_at = second.wrap_at if second.wrap_at is not None else len(second.code) - 1
        execctrl = (int(opt) << 30 | int(side_pindir) << 29 | wrap_at << 12
                    | (second.wrap_target_at or 0) << 7)
        shiftctrl = (fifo_join << 30 | (pull_thresh & 0x1F) << 25 | (push_thresh & 0x1F) << 20
                     | out_shiftdir << 19 | in_shiftdir << 18 | int(autopull) << 17 | int(autopush) << 16)
        return [array("H", second.code), -1, -1, execctrl, shiftctrl, out_init, set_init, sideset_init]

    return dec


def asm_pio_encode(instr, sideset_count, sideset_opt=False):
    """One instruction, as StateMachine.exec() assembles a string on the board."""
    em = _Emitter(sideset_count, bool(sideset_opt), 5 - sideset_count - (1 if sideset_opt else 0))
    em.resolve = True
    g = em.dsl()
    g["jmp"] = None  # not supported by the board's asm_pio_encode either
    exec(instr, g)
    if len(em.code) != 1:
        raise PIOASMError("expecting exactly 1 instruction")
    return em.code[0]


def program_info(prog):
    """(opcodes, wrap_target, wrap, sideset pins, sideset opt, in_shift_right, out_shift_right)."""
    execctrl = prog[PROG_EXECCTRL]
    shiftctrl = prog[PROG_SHIFTCTRL]
    return (list(prog[PROG_DATA]), (execctrl >> 7) & 0x1F, (execctrl >> 12) & 0x1F,
            _sideset_pins(prog[PROG_SIDESET_INIT]), bool(execctrl >> 30 & 1),
            bool(shiftctrl >> 18 & 1), bool(shiftctrl >> 19 & 1))


class StateMachine:
    """Records init/put/exec/active/restart in machine.timeline (the machine mock installed next to this
    one) and serves get() from `rx`, a list the test fills (`pushes`: words that arrive in rx only when
    an exec'd push instruction runs)."""

    def __init__(self, id, program=None, freq=-1, **kw):
        self.id = id
        self.rx = []  # words get() returns, filled by the test
        self.tx = []  # words put() and not yet taken
        self.pushes = []  # words an exec'd push moves into rx (the state a halted SM would push)
        self.running = False
        self.program = None
        if program is not None:
            self.init(program, freq, **kw)

    def _log(self, *event):
        import machine  # the machine mock installed beside this one

        machine.timeline.append(event)

    def init(self, program, freq=-1, **kw):
        self.program = program
        self.freq = freq
        self.config = kw
        self._log("sm.init", self.id, freq, tuple(sorted((k, getattr(v, "id", v)) for k, v in kw.items())))

    def active(self, value=None):
        if value is None:
            return self.running
        self.running = bool(value)
        self._log("sm.active", self.id, int(self.running))
        return self.running

    def put(self, value, shift=0):
        self.tx.append(value >> shift)
        self._log("sm.put", self.id, value >> shift)

    def get(self, buf=None, shift=0):
        return self.rx.pop(0) >> shift

    def rx_fifo(self):
        return len(self.rx)

    def tx_fifo(self):
        return len(self.tx)

    def exec(self, instr):
        self._log("sm.exec", self.id, instr)
        if isinstance(instr, int) and instr & 0xE080 == 0x8080 and self.tx:  # a pull takes a TX word
            self.tx.pop(0)
        if isinstance(instr, int) and instr & 0xE080 == 0x8000 and self.pushes:  # a push fills rx
            self.rx.append(self.pushes.pop(0))

    def restart(self):
        self._log("sm.restart", self.id)
