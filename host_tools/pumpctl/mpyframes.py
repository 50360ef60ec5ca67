"""Frame size of every bytecode function in a MicroPython .mpy file (v6), read from its prelude: the
frames over FRAME_ON_STACK_WORDS come from the heap at each call. docs/pumpctl.md (mpyframes.py)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

FRAME_ON_STACK_WORDS = 11  # VM_MAX_STATE_ON_STACK / sizeof(mp_uint_t)
EXC_STACK_WORDS = 3  # sizeof(mp_exc_stack_t) / sizeof(mp_uint_t): three pointers
_KIND_BYTECODE = 0  # raw code kind, low two bits of its header (MP_CODE_BYTECODE - 2)
_ARCH_FLAGS_PRESENT = 0x40
_OBJ_NONE_TRUE_FALSE_ELLIPSIS = (1, 2, 3, 4)
_OBJ_TUPLE = 10
_OBJ_STR_BYTES = (5, 6)


class Frame:
    """One function's prelude figures."""

    def __init__(self, name: str, n_state: int, n_exc_stack: int):
        self.name = name
        self.n_state = n_state
        self.n_exc_stack = n_exc_stack

    @property
    def words(self) -> int:
        return self.n_state + EXC_STACK_WORDS * self.n_exc_stack

    @property
    def on_heap(self) -> bool:
        return self.words > FRAME_ON_STACK_WORDS

    def __repr__(self) -> str:
        return f"{self.name}: {self.words} words (n_state {self.n_state}, exc levels {self.n_exc_stack})"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uint(self) -> int:  # 7 bits a byte, most significant first, top bit = more
        v = 0
        while True:
            b = self.byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v


def _prelude(fun: bytes):
    """(n_state, n_exc_stack, n_pos_args, n_kwonly_args, index of the name's qstr): py/bc.h."""
    r = _Reader(fun)
    z = r.byte()  # xSSSSEAA, then xFSSKAED while the top bit is set
    s, e, a, k = (z >> 3) & 0xF, (z >> 2) & 1, z & 3, 0
    n = 0
    while z & 0x80:
        z = r.byte()
        s |= (z & 0x30) << (2 * n)
        e |= (z & 0x02) << n
        a |= (z & 0x04) << n
        k |= ((z & 0x08) >> 3) << n
        n += 1
    while r.byte() & 0x80:  # prelude size (n_info, n_cell): not needed
        pass
    return s + 1, e, a, k, r.uint()


def _skip_obj(r: _Reader) -> None:
    t = r.byte()
    if t == 0 or t in _OBJ_NONE_TRUE_FALSE_ELLIPSIS:
        return
    n = r.uint()
    if t == _OBJ_TUPLE:
        for _ in range(n):
            _skip_obj(r)
        return
    r.take(n + (1 if t in _OBJ_STR_BYTES else 0))


def read(data: bytes, static_names: dict[int, str] | None = None) -> list[Frame]:
    """Every bytecode function of a .mpy, module body first. static_names: index -> name of the
    interpreter's static qstrs (see static_qstrs); one missing is named "<static N>"."""
    r = _Reader(data)
    magic, version, feature, _small_int_bits = r.take(4)
    if magic != ord("M") or version != 6:
        raise ValueError(f"not a v6 .mpy file (header {data[:4]!r})")
    if feature & _ARCH_FLAGS_PRESENT:
        r.uint()
    names = []
    n_qstr, n_obj = r.uint(), r.uint()
    for _ in range(n_qstr):
        ln = r.uint()
        if ln & 1:
            i = ln >> 1
            names.append((static_names or {}).get(i, f"<static {i}>"))
        else:
            names.append(r.take((ln >> 1) + 1)[:-1].decode())
    for _ in range(n_obj):
        _skip_obj(r)
    frames: list[Frame] = []

    def raw_code(prefix: str | None) -> None:  # prefix None: the module body
        kind_len = r.uint()
        if kind_len & 3 != _KIND_BYTECODE:
            raise ValueError("native code in the .mpy: only bytecode is read")
        fun = r.take(kind_len >> 3)
        s, e, _a, _k, q = _prelude(fun)
        qual = "<module>" if prefix is None else names[q] if not prefix else prefix + "." + names[q]
        frames.append(Frame(qual, s, e))
        if (kind_len >> 2) & 1:
            for _ in range(r.uint()):
                raw_code("" if prefix is None else qual)

    raw_code(None)
    return frames


def compile_py(mpy_cross: str, src: Path, opt: int = 3) -> bytes:
    """src compiled by mpy-cross at -O{opt} (the frozen image's level), as .mpy bytes."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.mpy"
        subprocess.run([mpy_cross, f"-O{opt}", "-o", str(out), str(src)], check=True, capture_output=True)
        return out.read_bytes()


def static_qstrs(mpy_cross: str, candidates: list[str]) -> dict[int, str]:
    """index -> name for those candidates that are static qstrs of this mpy-cross: learnt by compiling
    one def per candidate (their prelude names, in order) rather than from a copy of the qstr list."""
    names = sorted({c for c in candidates if c.isidentifier()})
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "names.py"
        src.write_text("".join(f"def {n}():\n    pass\n" for n in names))
        data = compile_py(mpy_cross, src)
    # read without names: each child's name is its qstr, static ones come back as "<static N>"
    frames = read(data)[1:]
    found = {}
    for want, f in zip(names, frames, strict=True):
        if f.name.startswith("<static "):
            found[int(f.name[8:-1])] = want
    return found
