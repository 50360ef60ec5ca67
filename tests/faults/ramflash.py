# RAM-backed flash for power-cut tests: the sim board's FlashDev (same block protocol, same
# program/erase counting and cut hook) over an in-memory image instead of a file.
import io
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../../boards/sim/rom")
from flashdev import BLOCK_SIZE, FlashDev  # noqa: E402


class PowerCut(Exception):
    pass


class RamFlash(FlashDev):
    """FlashDev over bytes. cut_after=N: the (N+1)th program/erase never happens: the image as it
    was just before it is kept in .frozen, and that write and all later ones land in a dead copy.

    Nothing is raised inside littlefs (an exception unwinding through its C code leaves open file
    objects whose finalisers later touch a half-updated instance): the code under test checks
    alive() after each operation and stops there, as the CPU would have."""

    def __init__(self, image, cut_after=-1):
        self.block_size = BLOCK_SIZE
        self.block_count = len(image) // BLOCK_SIZE
        self.fresh = False
        self._f = io.BytesIO(image)
        self.writes = 0
        self.erases = 0
        self.cut_after = cut_after
        self.frozen = None
        self.on_cut = self._cut

    def _cut(self):
        if self.frozen is None:
            self.frozen = self._f.getvalue()

    def alive(self):
        """Raise PowerCut once the cut has happened."""
        if self.frozen is not None:
            raise PowerCut()

    def _erase(self, block):
        self.erases += 1
        FlashDev._erase(self, block)

    def image(self):
        return self.frozen if self.frozen is not None else self._f.getvalue()


def blank(block_count):
    return b"\xff" * (BLOCK_SIZE * block_count)
