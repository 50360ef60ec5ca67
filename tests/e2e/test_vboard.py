"""End to end: start a virtual board, flash it with pumpctl, talk to it with pyserial and mpremote."""

import json
import time

import pytest
import serial

from pumpctl.client import Client
from pumpctl.link import Link
from vbtools import VBoard, run

pytestmark = pytest.mark.e2e


def status(port):
    with Link(port) as link:
        return Client(link).wait_ready(10)


def test_flash_status_ls_and_persistence_across_restart(tmp_path):
    b = VBoard(tmp_path / "vb")
    port = b.start()
    try:
        r = run("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", check=True)
        assert "verified by SHA-256" in r.stdout and "answers" in r.stdout

        # status over plain pyserial: the documented line protocol, nothing from pumpctl
        with serial.Serial(port, 115200, timeout=3) as s:
            s.reset_input_buffer()
            s.write(b'{"id":41,"op":"status"}\n')
            deadline = time.monotonic() + 5
            reply = None
            while time.monotonic() < deadline and reply is None:
                line = s.readline()
                if line.startswith(b"{"):
                    msg = json.loads(line)
                    reply = msg if msg.get("id") == 41 else None
        assert reply and reply["ok"], reply
        st = reply["result"]
        assert st["board"] == "sim" and st["fw"] == "0.1.0" and st["reset_cause"] == "SOFT"
        # 155,200 B free at boot in the default 384K heap (docs/sim.md, "The heap"; 30,464 B of a 256K
        # heap before, the same 228.6 KB in use; 159,488 B before the tick's functions were split to keep
        # their frames off the chip's heap, docs/epico.md). A loaded machine reads about 700 B less: the
        # floor leaves that and ~500 B of margin, so a new module or a dozen new functions trip it.
        assert st["mem_free"] > 153_900, st["mem_free"]

        # real mpremote against the port: ls shows the flashed files; cp into flash and back
        ls = run("mpremote", "connect", port, "resume", "ls", ":", check=True).stdout
        for name in ("main.py", "board.py", "itpump/"):
            assert name in ls, ls
        src = tmp_path / "note.txt"
        src.write_text("kept in littlefs\n")
        run("mpremote", "connect", port, "resume", "cp", str(src), ":note.txt", check=True)
        back = tmp_path / "back.txt"
        run("mpremote", "connect", port, "resume", "cp", ":note.txt", str(back), check=True)
        assert back.read_text() == "kept in littlefs\n"

        # power cycle: the flash image persists, the firmware boots from it by itself
        b.stop()
        port = b.start()
        st = status(port)
        assert st["reset_cause"] == "PWRON" and st["board"] == "sim"
        ls = run("mpremote", "connect", port, "resume", "ls", ":", check=True).stdout
        assert "note.txt" in ls and "main.py" in ls
    finally:
        b.stop()


def test_protocol_errors_over_the_link(flashed_board):
    with Link(flashed_board.port) as link:
        c = Client(link)
        c.wait_ready(10)
        link.write(b"{broken\n" + b"y" * 3000 + b"\n" + b'{"id":77,"op":"launch"}\n')
        got = []
        while len(got) < 3:
            line = link.readline(5)
            assert line is not None, got
            if line.startswith(b"{"):
                got.append(json.loads(line))
        assert [g["error"]["code"] for g in got] == ["JSON", "FRAME", "UNKNOWN_OP"]
        assert got[2]["id"] == 77
        assert c.request("ping") == {"pong": True}  # still serving


def test_pumpctl_status_json(flashed_board):
    r = run("pumpctl", "status", "--json", "--port", flashed_board.port, check=True)
    env = json.loads(r.stdout)
    assert env["schema"] == 1 and env["command"] == "status" and env["ok"] is True
    st = env["result"]
    assert st["board"] == "sim" and st["uptime_ms"] >= 0


def test_flash_with_mpy_cross(flashed_board):
    r = run("pumpctl", "flash", "--board", "sim", "--mpy", "--port", flashed_board.port, "--quiet", check=True)
    assert "removed stale" in r.stdout  # the .py sources that would shadow the .mpy are gone
    ls = run("mpremote", "connect", flashed_board.port, "resume", "ls", ":itpump", check=True).stdout
    assert "app.mpy" in ls and "app.py" not in ls
    # mpremote left the board at its REPL (as on a Pico): restart runs the firmware again
    run("pumpctl", "restart", "--port", flashed_board.port, check=True)
    assert status(flashed_board.port)["board"] == "sim"
    run("pumpctl", "flash", "--board", "sim", "--port", flashed_board.port, "--quiet", check=True)
    ls = run("mpremote", "connect", flashed_board.port, "resume", "ls", ":itpump", check=True).stdout
    assert "app.py" in ls and "app.mpy" not in ls


def test_wrong_board_is_refused_and_nothing_changes(flashed_board):
    before = run("mpremote", "connect", flashed_board.port, "resume", "ls", ":", check=True).stdout
    r = run("pumpctl", "flash", "--board", "rpi_pico", "--port", flashed_board.port, "--quiet")
    assert r.returncode == 1
    assert "not an rp2 board" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    after = run("mpremote", "connect", flashed_board.port, "resume", "ls", ":", check=True).stdout
    assert before == after


def test_fresh_board_says_firmware_missing(fresh_board):
    r = run("pumpctl", "status", "--port", fresh_board.port, "--timeout", "1")
    assert r.returncode == 5 and "Traceback" not in r.stderr
    assert "itpump is not running" in r.stderr and "pumpctl flash" in r.stderr


def test_speed_factor_runs_the_virtual_clock_faster(tmp_path):
    b = VBoard(tmp_path / "fast", speed=100)
    port = b.start()
    try:
        run("pumpctl", "flash", "--board", "sim", "--port", port, "--quiet", check=True)
        t0 = time.monotonic()
        s0 = status(port)["uptime_ms"]
        time.sleep(1.0)
        s1 = status(port)["uptime_ms"]
        real_ms = (time.monotonic() - t0) * 1000
        ratio = (s1 - s0) / real_ms
        assert 50 < ratio < 150, ratio
    finally:
        b.stop()


def test_cli_errors_are_one_line(tmp_path, flashed_board):
    r = run("pumpctl", "status", "--port", str(tmp_path / "no-such-tty"))
    assert r.returncode == 3 and r.stderr.strip() == f"pumpctl: error: no such port: {tmp_path / 'no-such-tty'}"
    with Link(flashed_board.port):  # holds the port exclusively
        r = run("pumpctl", "status", "--port", flashed_board.port)
    assert r.returncode == 6 and "port busy" in r.stderr and "Traceback" not in r.stderr
