"""pumpctl flash on the virtual board: a refused flash leaves the firmware running, the board is found
by itself, unchanged files are skipped, and a board left at the REPL with its heap full still flashes."""

import json

import pytest

from vbtools import VBoard, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = VBoard(tmp_path_factory.mktemp("vb"))
    b.start()
    yield b
    b.stop()


def pc(*args, ok=True):
    r = run("pumpctl", *args, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert (r.returncode == 0) == ok, f"pumpctl {args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def status(port):
    return json.loads(pc("status", "--json", "--port", port).stdout)["result"]  # the --json envelope


def test_board_found_by_itself_and_unchanged_files_skipped(board):
    r = pc("flash", "--port", board.port, "--quiet")  # a fresh board, at its REPL: it says it is the sim
    assert " to sim on " in r.stdout and "unchanged" not in r.stdout
    r = pc("flash", "--port", board.port, "--quiet")  # running firmware: its status says sim
    assert "flashed 0 files (0 bytes) to sim" in r.stdout and "unchanged" in r.stdout
    assert status(board.port)["board"] == "sim"


def test_refused_flash_leaves_the_firmware_running(board):
    pc("flash", "--port", board.port, "--quiet")
    before = status(board.port)
    r = pc("flash", "--board", "rpi_pico", "--port", board.port, "--quiet", ok=False)
    assert "not an rp2 board" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    after = status(board.port)  # answers: not interrupted, not left at the REPL
    assert after["boot_count"] == before["boot_count"] and after["uptime_ms"] > before["uptime_ms"]


def test_board_left_at_the_repl_with_a_full_heap_flashes(board):
    pc("flash", "--port", board.port, "--quiet")
    # to the last bytes: too full for the board to run even the few lines that ask what it is
    fill = ("_junk=[]\nfor _n in (1500,256,64,16):\n try:\n  while 1:_junk.append(bytearray(_n))\n"
            " except MemoryError:pass\nprint(len(_junk))")
    r = run("mpremote", "connect", board.port, "resume", "exec", fill, check=True)
    assert int(r.stdout.split()[-1]) > 10  # the heap is full of what a REPL session left
    r = pc("flash", "--port", board.port, "--quiet", "--mpy")
    assert "as .mpy to sim" in r.stdout and "restarted" in r.stdout
