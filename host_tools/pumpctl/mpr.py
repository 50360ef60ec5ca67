"""The one adapter over mpremote's Python API (marked unstable upstream; pinned in pyproject).

Nothing else in pumpctl imports mpremote: if its API moves, only this file changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from . import PumpctlError
from .link import describe_open_error


class Device:
    """A board at its raw REPL. Use as a context manager; interrupts any running program."""

    def __init__(self, port: str):
        self.port = port
        self._closed = False
        try:
            self.t = SerialTransport(port, baudrate=115200)
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

    def eval(self, expr: str):
        try:
            return self.t.eval(expr)
        except TransportExecError as e:
            raise PumpctlError(f"board error: {e.error_output.strip().splitlines()[-1]}") from None

    def info(self) -> dict:
        """What runs on the board: platform, machine string, MicroPython version, .mpy version."""
        self.exec("import sys")
        plat, machine, ver, mpy = self.eval(
            "(sys.platform, sys.implementation._machine, tuple(sys.implementation.version[:3]), "
            "getattr(sys.implementation, '_mpy', 0))")
        sim = self.eval("'simrom' in sys.modules")
        return {"platform": plat, "machine": machine, "version": tuple(ver), "mpy": mpy, "sim": sim}

    def makedirs(self, path: str) -> None:
        parts = [p for p in path.strip("/").split("/") if p]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if not self.t.fs_exists(d):
                self.t.fs_mkdir(d)

    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> None:
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

    def remove(self, path: str) -> None:
        self.t.fs_rmfile(path)

    def rmdir(self, path: str) -> None:
        self.t.fs_rmdir(path)

    def soft_reset(self) -> None:
        """Restart the firmware (Ctrl-D at the friendly REPL), then let go of the port."""
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")
        self.t.serial.flush()
        self._closed = True
        self.t.close()


def local_sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
