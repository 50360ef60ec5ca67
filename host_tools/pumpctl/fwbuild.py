"""Build a MicroPython v1.28 image for an rp2 board, with the firmware frozen in (or stock), and the
`itpump_frozen` hash table `pumpctl flash` reads. `make firmware` runs this; inputs, outputs and build
trees: docs/pumpctl.md (fwbuild.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from . import REPO_ROOT, PumpctlError
from .flash import board_chip

SHARED_RP2 = Path("/work/shared/rp2")  # where the project's build machines keep the third-party inputs


def shared_rp2(name: str) -> Path:
    """A third-party input kept beside the repository, never in it (shared/rp2/ in a parent folder of the
    checkout, wherever it was cloned, else the build machines' copy)."""
    for parent in REPO_ROOT.resolve().parents:
        if (parent / "shared" / "rp2" / name).exists():
            return parent / "shared" / "rp2" / name
    return SHARED_RP2 / name


# The source used when no MPY_DIR is given (a read-only copy on the project's build machines).
TARBALL = Path(os.environ.get("ITPUMP_MPY_TARBALL") or shared_rp2("micropython-1.28.0-rp2-src.tar.xz"))
MPY_VERSION = "v1.28.0"
# Each chip's MicroPython board and UF2 family id (RP2040; RP2350 ARM secure).
PORT_BOARDS = {"RP2040": ("RPI_PICO", 0xE48BFF56), "RP2350": ("RPI_PICO2", 0xE48BFF59)}
FLASH_BASE = 0x10000000
OUTPUTS = ("firmware.uf2", "firmware.bin", "firmware.elf")
FROZEN_MODULE = "itpump_frozen"
# Make variables of an outer `make firmware ...` must not reach MicroPython's own make: its
# BOARD=rpi_pico would override the port's board.
_MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")


def build_root(root: Path = REPO_ROOT) -> Path:
    return root / "build"


def out_dir(board: str, frozen: bool = True, root: Path = REPO_ROOT) -> Path:
    return build_root(root) / (board if frozen else f"{board}-stock")


def missing_prereqs(mpy_dir: Path | str | None = None) -> list[str]:
    """What a build needs and this machine lacks, by name (empty: a build can run)."""
    missing = [t for t in ("arm-none-eabi-gcc", "cmake", "make", "gcc") if shutil.which(t) is None]
    if "arm-none-eabi-gcc" not in missing:
        r = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=libc.a"], capture_output=True, text=True)
        if not os.path.isabs(r.stdout.strip()):  # gcc echoes the bare name when it has no libc
            missing.append("newlib (libnewlib-arm-none-eabi)")
    if mpy_dir is not None:
        if not (Path(mpy_dir) / "ports" / "rp2").is_dir():
            missing.append(f"MicroPython source (MPY_DIR={mpy_dir} has no ports/rp2)")
    elif not TARBALL.is_file():
        missing.append(f"MicroPython source (MPY_DIR, or {TARBALL})")
    return missing


def source_tree(mpy_dir: Path | str | None = None, root: Path = REPO_ROOT) -> Path:
    """The MicroPython tree to build from: MPY_DIR, or the tarball unpacked once under build/src."""
    if mpy_dir is not None:
        return Path(mpy_dir).resolve()
    dest = build_root(root) / "src"
    tree = dest / "micropython"
    stamp = dest / ".unpacked"
    st = TARBALL.stat()
    mark = f"{TARBALL} {st.st_size} {int(st.st_mtime)}\n"
    if stamp.exists() and stamp.read_text() == mark and tree.is_dir():
        return tree
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(TARBALL) as tf:
        tf.extractall(dest, filter="tar")
    if not (tree / "ports" / "rp2").is_dir():
        raise PumpctlError(f"{TARBALL} does not hold micropython/ports/rp2")
    stamp.write_text(mark)
    return tree


def port_board(board: str, root: Path = REPO_ROOT) -> tuple[str, int]:
    chip = board_chip(board, root)
    if chip is None:
        raise PumpctlError(f"board '{board}' is the virtual board: it has no firmware image to build")
    return PORT_BOARDS[chip]


def frozen_sources(manifest: Path, tree: Path, port_name: str, root: Path = REPO_ROOT) -> dict[str, Path]:
    """Our files a manifest freezes (device path -> source), read with MicroPython's own parser."""
    sys.path.insert(0, str(tree / "tools"))
    try:
        import manifestfile  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tree / "tools"))
    port_dir = tree / "ports" / "rp2"
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": str(tree), "MPY_LIB_DIR": str(tree / "lib" / "micropython-lib"),
        "PORT_DIR": str(port_dir), "BOARD_DIR": str(port_dir / "boards" / port_name)})
    try:
        m.execute(str(manifest))
    except manifestfile.ManifestFileError as e:
        raise PumpctlError(f"{manifest}: {e}") from None
    ours = {}
    homes = [(root / d).resolve() for d in ("firmware", "boards")]  # not build/src: MicroPython's
    for f in m.files():
        src = Path(f.full_path).resolve()
        if any(src.is_relative_to(h) for h in homes):
            ours[f.target_path] = src
    return ours


def frozen_module_text(sources: dict[str, Path], board: str) -> str:
    """The generated itpump_frozen module: per-file SHA-256 of the sources frozen in the image."""
    hashes = {p: hashlib.sha256(src.read_bytes()).hexdigest() for p, src in sorted(sources.items())}
    lines = [f"# Generated by host_tools/pumpctl/fwbuild.py: the sources frozen into this {board} image.",
             f"BOARD = {board!r}", f"DIGEST = {tree_digest(hashes)!r}", "FILES = {"]
    lines += [f"    {p!r}: {h!r}," for p, h in hashes.items()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def tree_digest(hashes: dict[str, str]) -> str:
    """One hash over (path, file hash) pairs: equal digests, equal frozen sources."""
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()


def _write_if_changed(path: Path, text: str) -> None:
    # An unchanged file keeps its mtime, so make and cmake rebuild nothing.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def build_env(tree: Path, base: dict[str, str] | None = None, tarball_tree: bool = True) -> dict[str, str]:
    """The environment of MicroPython's make: board-preserving CMAKE_ARGS, an honest version banner."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _MAKE_ENV}
    # Through the environment: CMAKE_ARGS on make's command line would replace the port's own
    # (which carry the board), and every build would silently become RPI_PICO.
    env["CMAKE_ARGS"] = (env.get("CMAKE_ARGS", "") + " -DPICO_NO_PICOTOOL=1").strip()
    if tarball_tree:
        # The unpacked tarball sits inside our repository: without a ceiling, git would describe
        # the itpump commit and the banner would claim e.g. "v1.28.0-dirty-g8835457".
        env["GIT_CEILING_DIRECTORIES"] = str(tree.parent)
        env["MICROPY_GIT_TAG"] = MPY_VERSION
        # The build date in the banner: the release's own (the tree's mpconfig.h), not today's,
        # so an unchanged rebuild regenerates nothing.
        env.setdefault("SOURCE_DATE_EPOCH", str(int((tree / "py" / "mpconfig.h").stat().st_mtime)))
    return env


def make_commands(tree: Path, port_name: str, build_dir: Path, manifest: Path | None,
                  jobs: int) -> list[list[str]]:
    """mpy-cross first (the freezer needs it), then the port."""
    port = ["make", f"-j{jobs}", "-C", str(tree / "ports" / "rp2"), f"BOARD={port_name}", f"BUILD={build_dir}"]
    if manifest is not None:
        port.append(f"FROZEN_MANIFEST={manifest}")
    return [["make", f"-j{jobs}", "-C", str(tree / "mpy-cross")], port]


def uf2_command(tree: Path, bin_path: Path, uf2_path: Path, family: int) -> list[str]:
    return [sys.executable, str(tree / "tools" / "uf2conv.py"), "-c", "-b", hex(FLASH_BASE),
            "-f", hex(family), "-o", str(uf2_path), str(bin_path)]


def _run(cmd: list[str], env: dict[str, str], log) -> None:
    r = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        where = f" (log: {log.name})" if hasattr(log, "name") else ""
        raise PumpctlError(f"firmware build failed: {' '.join(cmd[:4])} ... exited {r.returncode}{where}")


def build(board: str, frozen: bool = True, mpy_dir: Path | str | None = None, root: Path = REPO_ROOT,
          jobs: int | None = None, quiet: bool = True) -> Path:
    """Build the image; returns its output folder (firmware.uf2/.bin/.elf in it)."""
    missing = missing_prereqs(mpy_dir)
    if missing:
        raise PumpctlError(f"cannot build firmware: missing {', '.join(missing)}")
    port_name, family = port_board(board, root)
    tree = source_tree(mpy_dir, root)
    key = "" if mpy_dir is None else "-" + hashlib.sha256(str(tree).encode()).hexdigest()[:8]
    name = board if frozen else f"{board}-stock"
    build_dir = build_root(root) / "cmake" / f"{name}{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    manifest = None
    if frozen:
        own = root / "boards" / board / "manifest.py"
        if not own.exists():
            raise PumpctlError(f"board '{board}' has no {own.relative_to(root)}: nothing to freeze")
        gen = build_dir / "gen"
        gen.mkdir(exist_ok=True)
        sources = frozen_sources(own, tree, port_name, root)
        _write_if_changed(gen / f"{FROZEN_MODULE}.py", frozen_module_text(sources, board))
        manifest = gen / "manifest.py"
        _write_if_changed(manifest, f"# Generated by fwbuild.py: the board's manifest and {FROZEN_MODULE}.\n"
                                    f"include({str(own)!r})\nmodule({FROZEN_MODULE + '.py'!r}, "
                                    f"base_path={str(gen)!r})\n")
    env = build_env(tree, tarball_tree=mpy_dir is None)
    out = out_dir(board, frozen, root)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "build.log"
    with open(log_path, "w") as log:
        for cmd in make_commands(tree, port_name, build_dir, manifest, jobs or os.cpu_count() or 1):
            _run(cmd, env, log if quiet else None)
        _run(uf2_command(tree, build_dir / "firmware.bin", build_dir / "firmware.uf2", family), env,
             log if quiet else None)
    for fname in OUTPUTS:
        src, dst = build_dir / fname, out / fname
        if not dst.exists() or src.stat().st_mtime_ns != dst.stat().st_mtime_ns:
            shutil.copy2(src, dst)
    if frozen:
        shutil.copy2(build_dir / "gen" / f"{FROZEN_MODULE}.py", out / f"{FROZEN_MODULE}.py")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fwbuild", description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--board", default="rpi_pico")
    ap.add_argument("--stock", action="store_true", help="stock MicroPython, nothing frozen (FROZEN=0)")
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR") or None,
                    help="a MicroPython checkout (default: the v1.28.0 tarball)")
    ap.add_argument("--verbose", action="store_true", help="show the compiler's output")
    a = ap.parse_args(argv)
    try:
        import time
        t0 = time.monotonic()
        out = build(a.board, frozen=not a.stock, mpy_dir=a.mpy_dir, quiet=not a.verbose)
    except PumpctlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = (out / "firmware.bin").stat().st_size
    print(f"{out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}/firmware.uf2: "
          f"{size:,} B image ({'frozen' if not a.stock else 'stock'}), {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
