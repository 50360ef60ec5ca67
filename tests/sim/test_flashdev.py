# The virtual board's flash (boards/sim/rom/flashdev.py) and the power-cut tests' RAM copy of it: an erase
# reads back 0xFF, and no operation creates an attribute that construction did not.
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT / "boards" / "sim" / "rom", ROOT / "tests" / "faults"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from ramflash import RamFlash, blank  # noqa: E402

from flashdev import BLOCK_SIZE, FlashDev  # noqa: E402


def _erase_and_write(dev):
    names = sorted(dev.__dict__)
    dev.writeblocks(1, b"\x00" * BLOCK_SIZE)  # the simple protocol: erase implied
    dev.ioctl(6, 2)  # erase block 2
    dev.writeblocks(2, b"\x5a" * 16, 8)  # the extended protocol: program within an erased block
    got = bytearray(BLOCK_SIZE)
    dev.readblocks(2, got)
    assert got == b"\xff" * 8 + b"\x5a" * 16 + b"\xff" * (BLOCK_SIZE - 24)
    dev.readblocks(1, got)
    assert got == b"\x00" * BLOCK_SIZE
    assert sorted(dev.__dict__) == names  # nothing made on first use


def test_the_file_flash_erases_to_ff_and_keeps_its_attributes(tmp_path):
    _erase_and_write(FlashDev(str(tmp_path / "flash.bin"), block_count=4))


def test_the_ram_flash_erases_to_ff_and_keeps_its_attributes():
    _erase_and_write(RamFlash(blank(4)))
