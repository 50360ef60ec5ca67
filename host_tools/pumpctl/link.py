"""Serial link to a board (pyserial): open with clear errors, read and write protocol lines."""

from __future__ import annotations

import time

import serial
import serial.tools.list_ports

from . import LinkError, NoBoardError

RP2_USB_VID = 0x2E8A  # Raspberry Pi
MICROPYTHON_PID = 0x0005  # MicroPython's rp2 port (Pico and Pico 2); a Debug Probe is 2E8A:000C


def _boards():
    return sorted((p for p in serial.tools.list_ports.comports()
                   if p.vid == RP2_USB_VID and p.pid == MICROPYTHON_PID), key=lambda p: p.device)


def find_ports() -> list[str]:
    """Serial ports of attached boards running MicroPython (USB 2E8A:0005)."""
    return [p.device for p in _boards()]


def list_boards() -> list[dict]:
    """Attached MicroPython boards: port, USB serial number and product string."""
    return [{"port": p.device, "serial": p.serial_number, "product": p.product,
             "vid_pid": f"{p.vid:04X}:{p.pid:04X}"} for p in _boards()]


class Link:
    """A line-oriented serial connection. Use as a context manager."""

    def __init__(self, port: str, baudrate: int = 115200):
        self.port = port
        try:
            self.ser = serial.Serial(port, baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            text = describe_open_error(port, e)
            raise (NoBoardError if text.startswith(("no such port", "not a serial port")) else LinkError)(text) \
                from None
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
            raise LinkError(f"write to {self.port} failed: {e}") from None

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
                raise LinkError(f"read from {self.port} failed: {e}") from None
            if chunk:
                self._buf += chunk

    def pending_text(self) -> bytes:
        """Bytes received that do not end in a newline (e.g. a REPL prompt)."""
        return bytes(self._buf)


def describe_open_error(port: str, e: Exception) -> str:
    import os

    text = str(e)
    if os.path.isdir(port):
        return f"not a serial port: {port} is a folder"
    if "No such file" in text or "[Errno 2]" in text:
        return f"no such port: {port}"
    if "Inappropriate ioctl" in text:  # a file that is not a tty: nothing there to talk to
        return f"not a serial port: {port}"
    if "exclusively lock" in text or "Resource temporarily unavailable" in text or "busy" in text.lower():
        from .web import busy_text

        return busy_text(port) or f"port busy: {port} is open in another program"
    if "Permission denied" in text:
        return f"permission denied opening {port} (add yourself to the dialout group)"
    return f"cannot open {port}: {text}"
