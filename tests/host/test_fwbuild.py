"""fwbuild: the commands and environment of a MicroPython rp2 build, what it freezes, its prerequisites.

The real build is one slow test (about 2 minutes from nothing on 2 cores; `pytest -m slow`); the chip
tests build the images anyway.
"""

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pumpctl import PumpctlError, fwbuild

ROOT = Path(__file__).resolve().parents[2]


def test_make_commands_build_mpy_cross_first_then_the_port_out_of_tree(tmp_path):
    tree = tmp_path / "mp"
    cmds = fwbuild.make_commands(tree, "RPI_PICO2", tmp_path / "b", tmp_path / "m.py", jobs=2)
    assert cmds[0] == ["make", "-j2", "-C", str(tree / "mpy-cross")]
    assert cmds[1] == ["make", "-j2", "-C", str(tree / "ports" / "rp2"), "BOARD=RPI_PICO2",
                       f"BUILD={tmp_path / 'b'}", f"FROZEN_MANIFEST={tmp_path / 'm.py'}"]
    # CMAKE_ARGS on the command line would replace the port's own (the board): never there
    assert not any(a.startswith("CMAKE_ARGS") for c in cmds for a in c)
    stock = fwbuild.make_commands(tree, "RPI_PICO", tmp_path / "b", None, jobs=1)[1]
    assert not any(a.startswith("FROZEN_MANIFEST") for a in stock)


def test_uf2_command_uses_each_chips_family_and_the_flash_base(tmp_path):
    assert fwbuild.port_board("rpi_pico") == ("RPI_PICO", 0xE48BFF56)
    assert fwbuild.port_board("rpi_pico2") == ("RPI_PICO2", 0xE48BFF59)
    cmd = fwbuild.uf2_command(tmp_path, tmp_path / "f.bin", tmp_path / "f.uf2", 0xE48BFF59)
    assert cmd[1:] == [str(tmp_path / "tools" / "uf2conv.py"), "-c", "-b", "0x10000000", "-f", "0xe48bff59",
                       "-o", str(tmp_path / "f.uf2"), str(tmp_path / "f.bin")]


def test_the_virtual_board_has_no_image():
    with pytest.raises(PumpctlError, match="virtual board"):
        fwbuild.port_board("sim")


def test_env_keeps_the_board_and_makes_the_banner_honest(tmp_path):
    tree = tmp_path / "src" / "micropython"
    (tree / "py").mkdir(parents=True)
    (tree / "py" / "mpconfig.h").write_text("")
    os.utime(tree / "py" / "mpconfig.h", (1775481169, 1775481169))
    outer = {"PATH": "/usr/bin", "CMAKE_ARGS": "-DFOO=1", "MAKEFLAGS": " -- BOARD=rpi_pico", "MAKELEVEL": "1"}
    env = fwbuild.build_env(tree, outer)
    assert env["CMAKE_ARGS"] == "-DFOO=1 -DPICO_NO_PICOTOOL=1"
    # the outer `make firmware BOARD=rpi_pico` must not reach the port's make
    assert "MAKEFLAGS" not in env and "MAKELEVEL" not in env
    # git stops above the unpacked tree: the banner must not describe the itpump repository
    assert env["GIT_CEILING_DIRECTORIES"] == str(tree.parent)
    assert env["MICROPY_GIT_TAG"] == "v1.28.0"
    assert env["SOURCE_DATE_EPOCH"] == "1775481169"
    assert fwbuild.build_env(tree, {"SOURCE_DATE_EPOCH": "5"})["SOURCE_DATE_EPOCH"] == "5"
    # a user's checkout describes itself with its own git
    own = fwbuild.build_env(tree, {"PATH": "/usr/bin"}, tarball_tree=False)
    assert own["CMAKE_ARGS"] == "-DPICO_NO_PICOTOOL=1"
    assert not {"GIT_CEILING_DIRECTORIES", "MICROPY_GIT_TAG", "SOURCE_DATE_EPOCH"} & set(own)


def test_missing_prereqs_names_each_missing_tool_and_the_source(monkeypatch, tmp_path):
    monkeypatch.setattr(fwbuild.shutil, "which", lambda name: None)
    monkeypatch.setattr(fwbuild, "TARBALL", tmp_path / "none.tar.xz")
    missing = fwbuild.missing_prereqs()
    assert missing[:4] == ["arm-none-eabi-gcc", "cmake", "make", "gcc"]
    assert missing[4] == f"MicroPython source (MPY_DIR, or {tmp_path / 'none.tar.xz'})"
    assert fwbuild.missing_prereqs(tmp_path)[-1] == f"MicroPython source (MPY_DIR={tmp_path} has no ports/rp2)"
    with pytest.raises(PumpctlError, match="cannot build firmware: missing arm-none-eabi-gcc, cmake"):
        fwbuild.build("rpi_pico")


def test_missing_newlib_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(fwbuild.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(fwbuild.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout="libc.a\n", stderr=""))
    (tmp_path / "ports" / "rp2").mkdir(parents=True)
    assert fwbuild.missing_prereqs(tmp_path) == ["newlib (libnewlib-arm-none-eabi)"]


def test_cli_prints_one_line_when_it_cannot_build(monkeypatch, capsys):
    monkeypatch.setattr(fwbuild, "missing_prereqs", lambda mpy_dir=None: ["cmake"])
    assert fwbuild.main(["--board", "rpi_pico"]) == 1
    err = capsys.readouterr().err
    assert err == "error: cannot build firmware: missing cmake\n"


def test_make_firmware_passes_board_frozen_and_mpy_dir():
    def dry(*args):
        r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "firmware", *args],
                           capture_output=True, text=True)
        return [ln.strip() for ln in r.stdout.splitlines() if "pumpctl.fwbuild" in ln][0]

    assert dry("BOARD=rpi_pico2").endswith("-m pumpctl.fwbuild --board rpi_pico2")
    assert dry("BOARD=rpi_pico", "FROZEN=0", "MPY_DIR=/src/mp").endswith(
        "-m pumpctl.fwbuild --board rpi_pico --stock --mpy-dir /src/mp")


@pytest.fixture(scope="module")
def manifest_tools(tmp_path_factory):
    """A tree holding MicroPython's manifest parser (from the tarball) and an empty port manifest."""
    tree = tmp_path_factory.mktemp("mp")
    (tree / "tools").mkdir()
    unpacked = ROOT / "build" / "src" / "micropython" / "tools" / "manifestfile.py"
    if unpacked.is_file():  # a build unpacked it already: skip the 4 MB decompression
        (tree / "tools" / "manifestfile.py").write_bytes(unpacked.read_bytes())
    elif fwbuild.TARBALL.is_file():
        with tarfile.open(fwbuild.TARBALL) as tf:
            member = tf.getmember("micropython/tools/manifestfile.py")
            (tree / "tools" / "manifestfile.py").write_bytes(tf.extractfile(member).read())
    else:
        pytest.skip(f"no MicroPython source: {fwbuild.TARBALL}")
    (tree / "ports" / "rp2" / "boards").mkdir(parents=True)
    (tree / "ports" / "rp2" / "boards" / "manifest.py").write_text("")
    return tree


@pytest.mark.parametrize("board", ["rpi_pico", "rpi_pico2"])
def test_manifest_freezes_the_firmware_the_board_file_and_main(manifest_tools, board):
    got = fwbuild.frozen_sources(ROOT / "boards" / board / "manifest.py", manifest_tools, board.upper())
    fw = ROOT / "firmware"
    want = {p.relative_to(fw).as_posix(): p for p in (fw / "itpump").rglob("*.py")}
    want["main.py"] = fw / "main.py"
    want["board.py"] = ROOT / "boards" / board / "board.py"
    assert got == want


def test_frozen_module_lists_each_files_hash(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    text = fwbuild.frozen_module_text({"itpump/a.py": tmp_path / "a.py", "main.py": tmp_path / "b.py"}, "rpi_pico")
    ns: dict = {}
    exec(text, ns)
    assert ns["BOARD"] == "rpi_pico"
    assert ns["FILES"] == {"itpump/a.py": hashlib.sha256(b"x = 1\n").hexdigest(),
                           "main.py": hashlib.sha256(b"y = 2\n").hexdigest()}
    assert ns["DIGEST"] == fwbuild.tree_digest(ns["FILES"])
    changed = dict(ns["FILES"], **{"main.py": "0" * 64})
    assert fwbuild.tree_digest(changed) != ns["DIGEST"]


@pytest.mark.slow
def test_real_build_freezes_itpump_and_rebuilds_fast():
    missing = fwbuild.missing_prereqs()
    if missing:
        pytest.skip(f"firmware build needs: {', '.join(missing)}")
    out = fwbuild.build("rpi_pico")
    assert out == ROOT / "build" / "rpi_pico"
    for name in fwbuild.OUTPUTS:
        assert (out / name).stat().st_size > 0
    data = (out / "firmware.bin").read_bytes()
    assert b"MicroPython v1.28.0 on " in data and b"-dirty" not in data
    assert (out / "firmware.uf2").read_bytes()[:8] == b"UF2\n\x57\x51\x5d\x9e"
    assert b"itpump_frozen" in data and b"itpump/therapy.py" in data
    ns: dict = {}
    exec((out / "itpump_frozen.py").read_text(), ns)
    assert ns["FILES"]["itpump/therapy.py"] == hashlib.sha256(
        (ROOT / "firmware" / "itpump" / "therapy.py").read_bytes()).hexdigest()
    before = (out / "firmware.bin").stat().st_mtime_ns
    r = subprocess.run([sys.executable, "-m", "pumpctl.fwbuild", "--board", "rpi_pico"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert (out / "firmware.bin").stat().st_mtime_ns == before  # nothing rebuilt, nothing copied


def test_shared_inputs_are_found_beside_a_clone_anywhere_else_on_the_build_machines_copy(tmp_path, monkeypatch):
    clone = tmp_path / "ci" / "itpump"
    clone.mkdir(parents=True)
    monkeypatch.setattr(fwbuild, "REPO_ROOT", clone)
    monkeypatch.setattr(fwbuild, "SHARED_RP2", tmp_path / "machine" / "rp2")
    assert fwbuild.shared_rp2("bootrom.bin") == tmp_path / "machine" / "rp2" / "bootrom.bin"
    (tmp_path / "ci" / "shared" / "rp2").mkdir(parents=True)
    (tmp_path / "ci" / "shared" / "rp2" / "bootrom.bin").write_bytes(b"\0")
    assert fwbuild.shared_rp2("bootrom.bin") == tmp_path / "ci" / "shared" / "rp2" / "bootrom.bin"
