"""Fixtures: virtual boards (real micropython behind a pty) for end-to-end tests."""

import pytest

from vbtools import VBoard, run


@pytest.fixture
def fresh_board(tmp_path):
    b = VBoard(tmp_path / "vb")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def flashed_board(tmp_path_factory):
    b = VBoard(tmp_path_factory.mktemp("vb"))
    b.start()
    run("pumpctl", "flash", "--board", "sim", "--port", b.port, "--quiet", check=True)
    yield b
    b.stop()
