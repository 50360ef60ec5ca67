# File-backed flash for the sim board: the Pico's 1408 KiB littlefs2 region, 4 KiB erase blocks, erase to
# 0xFF as NOR flash does. Every program/erase is counted so a power cut can be injected after the Nth one.
# Why no fsync, and the rest of the virtual board: docs/sim.md.
from micropython import const

BLOCK_SIZE = const(4096)
_BLOCK_COUNT = const(352)  # 1408 KiB: the rp2 port's default filesystem size on a 2 MB Pico

_ERASE_CHUNK = const(512)  # divides every block size littlefs uses here
_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)
_FF = b"\xff" * _ERASE_CHUNK  # an erase's bytes, made once with the ROM: no 4 KiB of garbage per erase


class FlashDev:
    def __init__(self, path, block_size=BLOCK_SIZE, block_count=_BLOCK_COUNT):
        self.block_size = block_size
        self.block_count = block_count
        self.fresh = False
        try:
            self._f = open(path, "r+b")
        except OSError:
            self._f = open(path, "w+b")
            blank = b"\xff" * block_size
            for _ in range(block_count):
                self._f.write(blank)
            self._f.flush()
            self.fresh = True
        self.writes = 0  # program + erase operations since power-on
        self.cut_after = -1  # >= 0: power fails on that write (see on_cut)
        self.on_cut = None

    def _count(self):
        self.writes += 1
        if self.cut_after >= 0 and self.writes > self.cut_after and self.on_cut:
            self.on_cut()

    def readblocks(self, block, buf, off=0):
        self._f.seek(block * self.block_size + off)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        if off is None:  # simple protocol: whole blocks, erase implied
            for i in range(len(buf) // self.block_size):
                self._erase(block + i)
            off = 0
        self._count()
        self._f.seek(block * self.block_size + off)
        self._f.write(buf)

    def _erase(self, block):
        self._count()
        self._f.seek(block * self.block_size)
        for _ in range(self.block_size // _ERASE_CHUNK):
            self._f.write(_FF)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_ERASE:
            self._erase(arg)
            return 0
        if op == _IOCTL_SYNC:
            return 0  # writes are already in the host's page cache (see above)
        if op in (_IOCTL_INIT, _IOCTL_DEINIT):
            return 0
        return None
