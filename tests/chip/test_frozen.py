"""Our frozen rp2 image (make firmware: itpump, the board file and main.py frozen) boots on the emulated
Pico from blank flash, with nothing of itpump on its filesystem."""

from __future__ import annotations

from pumpctl.client import Client
from pumpctl.link import Link
from pumpctl.mpr import Device


def test_frozen_image_boots(chip_factory, frozen_image):
    chip = chip_factory("frozen")
    port = chip.start(firmware=frozen_image, erase=True)
    try:
        with Link(port) as link:
            st = Client(link, timeout_s=10).wait_ready(60)
        assert st["board"] == "rpi_pico" and st["platform"] == "rp2", st
        with Device(port) as dev:  # at rest the REPL is open: look at the filesystem
            names = [n for n, _ in dev.listdir("/")]
            where = dev.exec("import itpump;print(itpump.__file__)").decode().strip()
        assert not {"itpump", "main.py", "board.py"} & set(names), names
        assert where.endswith("itpump/__init__.py"), where  # so from the image
        print(f"frozen image boots from blank flash: free heap {st['mem_free']:,} B, used {st['mem_alloc']:,} B; "
              f"filesystem {names}")
    finally:
        chip.stop()
