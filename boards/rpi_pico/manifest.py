# MicroPython freeze manifest of the rpi_pico image: the port's own modules, then itpump
# (`make firmware BOARD=rpi_pico`, docs/hardware.md).
include("$(PORT_DIR)/boards/manifest.py")
include("../manifest_itpump.py", board="rpi_pico")
