"""The one adapter over mpremote's Python API (marked unstable upstream; pinned in pyproject): nothing else
in pumpctl imports mpremote. Why its file operations are few, large raw-REPL programs: docs/pumpctl.md."""

from __future__ import annotations

import ast
import base64
import hashlib
import time
from collections.abc import Callable, Iterable

from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from . import PumpctlError
from .link import describe_open_error

BATCH_BYTES = 6144  # source text per raw-REPL program: a few files, or one chunk of a large one
CHUNK_BYTES = 3072  # file bytes per write call (its literal is compiled in the board's heap)
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
# The longest one read of the port blocks. mpremote reads a pty (the virtual and the emulated board)
# byte by byte without its own timeouts, so without this a reply that never comes is waited for forever.
READ_TIMEOUT_S = 30.0

# Defined on the board once per session (globals survive between raw-REPL programs).
_HELPERS = """\
import os,sys,binascii
try:
 import hashlib
except ImportError:
 hashlib=None
def _h(p):
 if hashlib is None:return None
 h=hashlib.sha256();b=bytearray(1024);m=memoryview(b)
 with open(p,'rb') as f:
  while 1:
   n=f.readinto(b)
   if not n:break
   h.update(m[:n])
 return binascii.hexlify(h.digest()).decode()
def _walk(d,o):
 try:
  for e in os.ilistdir(d):
   p=d+'/'+e[0]
   if e[1]&0x4000:_walk(p,o);o.append((p,-1))
   else:o.append((p,e[3] if len(e)>3 else os.stat(p)[6]))
 except OSError:pass
def _D(p):
 try:os.mkdir(p)
 except OSError:pass
_a=binascii.a2b_base64
"""


class Device:
    """A board at its raw REPL. Use as a context manager; interrupts any running program."""

    def __init__(self, port: str):
        self.port = port
        self._closed = False
        self._helpers = False
        try:
            self.t = SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT_S)
        except TransportError as e:
            raise PumpctlError(describe_open_error(port, e)) from None
        except Exception as e:  # pyserial errors surface raw through mpremote
            raise PumpctlError(describe_open_error(port, e)) from None
        try:
            # resume: no soft reset first (on the virtual board a soft reset ends the interpreter)
            self.t.enter_raw_repl(soft_reset=False)
        except TransportError:
            self.t.close()
            raise PumpctlError(f"board on {port} did not open its REPL (locked by running therapy, "
                               "or not a MicroPython board)") from None

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        finally:
            self.t.close()

    def exec(self, code: str) -> bytes:
        try:
            return self.t.exec(code)
        except TransportExecError as e:
            raise PumpctlError(f"board error: {e.error_output.strip().splitlines()[-1]}") from None
        except TransportError as e:
            raise PumpctlError(f"board on {self.port} stopped answering its REPL: {e}") from None

    def eval(self, expr: str):
        try:
            return self.t.eval(expr)
        except TransportExecError as e:
            raise PumpctlError(f"board error: {e.error_output.strip().splitlines()[-1]}") from None

    def _value(self, code: str):
        """Run code whose last line prints a repr(); the value, parsed on this side."""
        return ast.literal_eval(self.exec(code).decode().strip())

    def soft_reset_raw(self, timeout_s: float = 30.0) -> None:
        """A soft reset that leaves the board at its raw REPL with a clean heap. A Pico comes back to it
        (main.py does not run in raw mode); the virtual board restarts its interpreter, which runs main.py:
        that is interrupted at once and the raw REPL entered again. timeout_s: for each of those steps."""
        ser = self.t.serial
        ser.write(b"\x04")
        data = self._read_until((b"soft reboot\r\n",), timeout_s)
        if data.endswith(b"soft reboot\r\n"):
            ser.write(b"\r\x03")  # at a raw REPL: clears its line; in main.py: KeyboardInterrupt
            data = self._read_until((RAW_PROMPT, b">>> "), timeout_s)
            if data.endswith(b">>> "):
                ser.write(b"\r\x01")
                data = self._read_until((RAW_PROMPT,), timeout_s)
        if not data.endswith(RAW_PROMPT):
            raise PumpctlError(f"board on {self.port} did not come back to its REPL after a soft reset")
        self._helpers = False

    def _read_until(self, endings: tuple[bytes, ...], timeout_s: float) -> bytes:
        """What the board sends until it ends with one of endings, or all it sent in timeout_s."""
        ser = self.t.serial
        data = b""
        deadline = time.monotonic() + timeout_s
        ser.timeout = 0.2
        try:
            while not data.endswith(endings) and time.monotonic() < deadline:
                data += ser.read(1)  # one at a time: what follows the ending is not ours to take
        finally:
            ser.timeout = READ_TIMEOUT_S
        return data

    def unload_firmware(self) -> None:
        """The virtual board's soft reset, short of one: there a real one restarts the interpreter and
        with it the firmware. Drops the firmware's modules (its bytecode and state) and collects."""
        self.exec("import sys,gc\nfor k in list(sys.modules):\n if k.split('.')[0] in ('itpump','board','main'):"
                  "del sys.modules[k]\n"
                  # and what REPL sessions left in its globals (the ROM's own names stay)
                  "for k in list(globals()):\n if k[0]!='_' and k not in ('sys','simrom','gc'):del globals()[k]\n"
                  "gc.collect()")
        self._helpers = False

    def is_sim(self) -> bool:
        """The virtual board (its ROM is loaded); a board whose heap is too full to say is not."""
        try:
            return bool(self._value("import sys\nprint('simrom' in sys.modules)"))
        except PumpctlError:
            return False

    def identity(self) -> dict:
        """What runs on the board: platform, machine string, MicroPython version, .mpy version, sim.
        A small program, so that it runs on a crowded heap before anything is reset."""
        plat, machine, ver, mpy, sim = self._value(
            "import sys\nprint(repr((sys.platform,sys.implementation._machine,tuple(sys.implementation.version[:3]),"
            "getattr(sys.implementation,'_mpy',0),'simrom' in sys.modules)))")
        return {"platform": plat, "machine": machine, "version": tuple(ver), "mpy": mpy, "sim": sim}

    def frozen(self) -> dict[str, str] | None:
        """The sources frozen into the board's image ({path: sha256 hex}, from itpump_frozen), or None."""
        return self._value(
            "import sys\ntry:\n import itpump_frozen as _F\n _z=_F.FILES\n del sys.modules['itpump_frozen'],_F\n"
            "except ImportError:\n _z=None\nprint(repr(_z))\n_z=None")

    def firmware_kind(self) -> str:
        """How itpump is installed: 'mpy' or 'py' (files, which win over a frozen copy), or 'frozen'."""
        return self._value(
            "import os\ndef _k():\n for k in ('mpy','py'):\n  try:\n   os.stat('/itpump/app.'+k);return k\n"
            "  except OSError:pass\n try:\n  import itpump_frozen;return 'frozen'\n except ImportError:return 'py'\n"
            "print(repr(_k()))")

    def _ensure_helpers(self) -> None:
        if not self._helpers:
            self.exec(_HELPERS)
            self._helpers = True

    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> None:
        """One file through mpremote's own writer (small files: keys, configuration)."""
        try:
            self.t.fs_writefile(path, data, chunk_size=1024, progress_callback=progress)
        except Exception as e:
            raise PumpctlError(f"writing {path} on the board failed: {e}") from None

    def sha256(self, path: str) -> bytes:
        try:
            return self.t.fs_hashfile(path, "sha256", chunk_size=1024)
        except Exception as e:
            raise PumpctlError(f"hashing {path} on the board failed: {e}") from None

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of a directory; [] if it does not exist."""
        if not self.t.fs_exists(path):
            return []
        return [(e.name, e.st_mode & 0x4000 != 0) for e in self.t.fs_listdir(path)]

    def scan(self, dirs: Iterable[str], files: Iterable[str], sizes: dict[str, int]) -> dict[str, tuple]:
        """{path: (size, sha256 hex or None)} of every file under dirs and of the named files that
        exist; a file is hashed only when its size is the one in sizes (else it differs anyway).
        Directories appear with size -1, after their contents."""
        self._ensure_helpers()
        code = (f"_o=[]\nfor _d in {list(dirs)!r}:_walk(_d,_o)\n"
                f"for _p in {list(files)!r}:\n try:_o.append((_p,os.stat(_p)[6]))\n except OSError:pass\n"
                f"_s={dict(sizes)!r}\n"
                "print(repr(dict((p,(n,_h(p) if _s.get(p)==n else None)) for p,n in _o)))\n_o=_s=None")
        return self._value(code)

    def write_files(self, files: list[tuple[str, bytes]], mkdirs: Iterable[str] = (),
                    progress: Callable[[str, int], None] | None = None) -> None:
        """Write whole files, several per raw-REPL program (a large one over several: the open file
        is a global, it survives between programs); progress(path, bytes of it written so far)."""
        self._ensure_helpers()
        batch: list[str] = [f"_D({d!r})" for d in mkdirs]
        size = sum(len(s) for s in batch)
        done: list[tuple[str, int]] = []

        def add(stmt: str) -> None:
            nonlocal size
            if batch and size + len(stmt) > BATCH_BYTES:
                flush()
            batch.append(stmt)
            size += len(stmt) + 1

        def flush() -> None:
            nonlocal size
            if batch:
                self.exec("\n".join(batch))
            if progress:
                for name, n in done:
                    progress(name, n)
            batch.clear()
            done.clear()
            size = 0

        for path, data in files:
            add(f"_f=open({path!r},'wb')")
            for i in range(0, len(data), CHUNK_BYTES):
                add("_f.write(" + _literal(data[i:i + CHUNK_BYTES]) + ")")
                done.append((path, min(i + CHUNK_BYTES, len(data))))
            add("_f.close()")
            if not data:
                done.append((path, 0))
        flush()

    def hashes(self, paths: list[str]) -> list[str | None]:
        """SHA-256 hex of each file as read back from the board's filesystem."""
        self._ensure_helpers()
        return self._value(f"print(repr([_h(p) for p in {paths!r}]))")

    def remove(self, files: list[str], dirs: list[str] = ()) -> None:
        """Delete files, then the directories (deepest first) that are left empty."""
        if not files and not dirs:
            return
        self._ensure_helpers()
        code = (f"for p in {files!r}:os.remove(p)\n"
                f"for p in {sorted(dirs, key=len, reverse=True)!r}:\n try:os.rmdir(p)\n except OSError:pass")
        self.exec(code)

    def soft_reset(self) -> None:
        """Restart the firmware (Ctrl-D at the friendly REPL), then let go of the port."""
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")
        self.t.serial.flush()
        self._closed = True
        self.t.close()


def _literal(data: bytes) -> str:
    """The shorter of a bytes literal and a base64 one decoded on the board (.mpy is mostly binary)."""
    r = repr(data)
    b = "_a(" + repr(base64.b64encode(data)) + ")"
    return r if len(r) <= len(b) else b


def local_sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
