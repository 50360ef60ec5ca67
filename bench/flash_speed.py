"""`pumpctl flash` against a raw `mpremote cp` of the same files plus a restart, on the virtual board: .py
and --mpy, onto the REPL and onto running firmware (docs/figures.md). Goal: every ratio at most 1.2."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import tool, virtual_board
from pumpctl import flash
from pumpctl.client import Client
from pumpctl.link import Link

RUNS = 3


def stage(files: list[flash.FlashFile], into: Path) -> list[str]:
    """The plan's files as a folder tree; mpremote cp arguments that copy them to the board's root."""
    for f in files:
        p = into / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f.data)
    tops = sorted(p.name for p in into.iterdir())
    args: list[str] = []
    for name in tops:
        if (into / name).is_dir():
            args += ["cp", "-r", str(into / name), ":", "+"]
    args += ["cp", *[str(into / n) for n in tops if (into / n).is_file()], ":"]
    return args


def restart_and_wait(port: str) -> None:
    """What a user does after mpremote: Ctrl-D at the REPL, then the firmware answers."""
    with Link(port) as link:
        link.write(b"\r\x02\x04")  # friendly REPL, soft reset
        Client(link).wait_ready(30)


def prepare(port: str, flavour: str, at_repl: bool) -> None:
    other = "--py" if flavour == "mpy" else "--mpy"
    tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", other)
    if at_repl:
        tool("mpremote", "connect", port, "resume", "exec", "pass")  # interrupts the firmware, stays at the REPL


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, virtual_board() as (_d, port):
        cp_args = {}
        sizes = {}
        for flavour in ("py", "mpy"):
            files = flash.plan("sim", mpy=flavour == "mpy")  # also warms the mpy-cross cache
            cp_args[flavour] = stage(files, Path(tmp) / flavour)
            sizes[flavour] = (len(files), sum(len(f.data) for f in files))
        rows = []
        for at_repl in (True, False):
            for flavour in ("py", "mpy"):
                base, ours = [], []
                for _ in range(RUNS):
                    prepare(port, flavour, at_repl)
                    t0 = time.perf_counter()
                    tool("mpremote", "connect", port, "resume", *cp_args[flavour])
                    restart_and_wait(port)
                    base.append(time.perf_counter() - t0)
                    prepare(port, flavour, at_repl)
                    t0 = time.perf_counter()
                    tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", f"--{flavour}")
                    ours.append(time.perf_counter() - t0)
                b, o = statistics.median(base), statistics.median(ours)
                rows.append(("REPL" if at_repl else "running firmware", flavour, b, o, o / b))
        t0 = time.perf_counter()
        tool("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", "--mpy")
        unchanged = time.perf_counter() - t0
    print(f"flash speed on the virtual board, median of {RUNS}; .py: {sizes['py'][0]} files, "
          f"{sizes['py'][1]:,} B; .mpy: {sizes['mpy'][0]} files, {sizes['mpy'][1]:,} B")
    print(f"{'from':<18}{'files':<7}{'mpremote cp + restart':>23}{'pumpctl flash':>15}{'ratio':>8}")
    for start, flavour, b, o, r in rows:
        print(f"{start:<18}{'.' + flavour:<7}{b:>21.2f} s{o:>13.2f} s{r:>7.2f}x")
    print(f"pumpctl flash of unchanged files (--mpy, running firmware): {unchanged:.2f} s")
    worst = max(r for *_, r in rows)
    print(f"worst ratio {worst:.2f}x (goal <= 1.20x): {'met' if worst <= 1.2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
