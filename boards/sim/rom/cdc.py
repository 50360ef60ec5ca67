# The sim board's USB-CDC serial: stdin/stdout of this process, bridged to a pty by the host.
# Like a Pico's USB stack, it turns a received 0x03 into KeyboardInterrupt (a pipe never raises SIGINT),
# leaving whatever follows unread for the REPL (docs/sim.md).
import select
import sys
import time

from micropython import const

_CTRL_C = const(3)


class Cdc:
    def __init__(self, clock):
        self._clock = clock
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self.stream = self._out  # for json.dump of large replies (protocol.write_ok)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)
        self._idle_ms = -1  # real ms of the last poll that found nothing (fast-forward throttle)
        self.interrupt_enabled = True  # micropython.kbd_intr(3) vs kbd_intr(-1)

    def _ready(self, timeout_ms):
        if not timeout_ms and self._clock.skip_to >= 0:
            # Fast-forward: the loop asks several times per tick (thousands per real second); a poll
            # syscall once per real millisecond still lets the host in within 1 ms.
            now = time.ticks_ms()
            if now == self._idle_ms:
                return False
            for _obj, ev in self._poll.ipoll(0):
                if ev & (select.POLLHUP | select.POLLERR) and not ev & select.POLLIN:
                    raise SystemExit
                return True
            self._idle_ms = now
            return False
        for _obj, ev in self._poll.ipoll(timeout_ms):
            if ev & (select.POLLHUP | select.POLLERR) and not ev & select.POLLIN:
                raise SystemExit  # host side of the link is gone: the board is unplugged
            return True
        return False

    def readchar(self):
        """Next received byte, or -1 if none is waiting."""
        if not self._ready(0):
            return -1
        if self._in.readinto(self._one) != 1:
            raise SystemExit  # EOF: bridge closed
        c = self._one[0]
        if c == _CTRL_C and self.interrupt_enabled:
            raise KeyboardInterrupt
        return c

    def wait(self, timeout_ms):
        """Block until input is waiting or timeout_ms of virtual time passed."""
        if timeout_ms <= 0:
            return
        if self._clock.skip_to >= 0:
            # Fast-forward: time jumps (up to the clock's quantum), but still let the host in.
            if not self._ready(0):
                self._clock.idle(timeout_ms)
            return
        self._ready(self._clock.real_ms(timeout_ms))

    def write(self, data):
        self._out.write(data)
