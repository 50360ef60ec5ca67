# USB-CDC serial of the rp2 port, read a byte at a time without blocking.
# Ctrl-C is handled by the USB stack itself (micropython.kbd_intr), below this driver.
import select
import sys


class UsbCdc:
    def __init__(self):
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self.stream = self._out  # for json.dump of large replies (protocol.write_ok)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def readchar(self):
        """Next received byte, or -1 if none is waiting."""
        for _ in self._poll.ipoll(0):
            if self._in.readinto(self._one) == 1:
                return self._one[0]
        return -1

    def wait(self, timeout_ms):
        """Block until input is waiting or timeout_ms passed."""
        if timeout_ms > 0:
            for _ in self._poll.ipoll(timeout_ms):
                return

    def write(self, data):
        self._out.write(data)
