"""Serial link to a board (pyserial): open with clear errors, read and write protocol lines."""

from __future__ import annotations

import time

import serial
import serial.tools.list_ports

from . import PumpctlError

RP2_USB_VID = 0x2E8A  # Raspberry Pi: Pico and Pico 2 running MicroPython


def find_ports() -> list[str]:
    """Serial ports of attached Raspberry Pi boards (USB VID 2E8A)."""
    return sorted(p.device for p in serial.tools.list_ports.comports() if p.vid == RP2_USB_VID)


class Link:
    """A line-oriented serial connection. Use as a context manager."""

    def __init__(self, port: str, baudrate: int = 115200):
        self.port = port
        try:
            self.ser = serial.Serial(port, baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            raise PumpctlError(describe_open_error(port, e)) from None
        self._buf = bytearray()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.ser.close()

    def discard_input(self) -> None:
        self.ser.reset_input_buffer()
        self._buf.clear()

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
            self.ser.flush()
        except serial.SerialException as e:
            raise PumpctlError(f"write to {self.port} failed: {e}") from None

    def readline(self, timeout_s: float) -> bytes | None:
        """One line (without the newline), or None when nothing complete arrived in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl]).rstrip(b"\r")
                del self._buf[: nl + 1]
                return line
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.ser.read(max(1, self.ser.in_waiting))
            except serial.SerialException as e:
                raise PumpctlError(f"read from {self.port} failed: {e}") from None
            if chunk:
                self._buf += chunk

    def pending_text(self) -> bytes:
        """Bytes received that do not end in a newline (e.g. a REPL prompt)."""
        return bytes(self._buf)


def describe_open_error(port: str, e: Exception) -> str:
    text = str(e)
    if "No such file" in text or "could not open port" in text and "Errno 2" in text:
        return f"no such port: {port}"
    if "exclusively lock" in text or "Resource temporarily unavailable" in text or "busy" in text.lower():
        from .web import busy_text

        return busy_text(port) or f"port busy: {port} is open in another program"
    if "Permission denied" in text:
        return f"permission denied opening {port} (add yourself to the dialout group)"
    return f"cannot open {port}: {text}"
