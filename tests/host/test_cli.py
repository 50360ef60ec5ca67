"""pumpctl without a board: port discovery, device checks, flash plan, one-line errors."""


import pytest

from pumpctl import PumpctlError, cli, flash, vboard


def test_port_found_by_raspberry_pi_usb_vid(comports, no_vboard):
    comports(("/dev/ttyUSB0", 0x10C4), ("/dev/ttyACM3", 0x2E8A))
    assert cli.resolve_port(None) == "/dev/ttyACM3"
    assert cli.resolve_port("/dev/other") == "/dev/other"


def test_no_board_and_several_boards_are_clear_errors(comports, no_vboard):
    comports(("/dev/ttyUSB0", 0x10C4))
    with pytest.raises(PumpctlError, match="no board found"):
        cli.resolve_port(None)
    comports(("/dev/ttyACM0", 0x2E8A), ("/dev/ttyACM1", 0x2E8A))
    with pytest.raises(PumpctlError, match="several boards"):
        cli.resolve_port(None)


def test_env_port_wins_over_discovery(monkeypatch, no_vboard):
    monkeypatch.setenv("ITPUMP_PORT", "/dev/ttyACM9")
    assert cli.resolve_port(None) == "/dev/ttyACM9"


def _info(**kw):
    d = {"platform": "rp2", "machine": "Raspberry Pi Pico with RP2040", "version": (1, 24, 1), "mpy": 0x0A06,
         "sim": False}
    d.update(kw)
    return d


def test_device_checks():
    flash.check_device("rpi_pico", _info())
    flash.check_device("rpi_pico2", _info(machine="Raspberry Pi Pico 2 with RP2350"))
    flash.check_device("sim", _info(platform="linux", machine="linux [GCC]", sim=True))
    with pytest.raises(PumpctlError, match="board mismatch: --board rpi_pico2 is for RP2350"):
        flash.check_device("rpi_pico2", _info())
    with pytest.raises(PumpctlError, match="not an rp2 board"):
        flash.check_device("rpi_pico", _info(platform="linux", sim=True))
    with pytest.raises(PumpctlError, match="not the virtual board"):
        flash.check_device("sim", _info())
    with pytest.raises(PumpctlError, match="1.19.1 on the device is too old"):
        flash.check_device("rpi_pico", _info(version=(1, 19, 1)))


def test_flash_plan_layout_and_mpy(tmp_path):
    files = {f.path: f.data for f in flash.plan("sim")}
    assert "/main.py" in files and "/board.py" in files and "/itpump/app.py" in files
    assert not any("/rom/" in p for p in files)  # the sim ROM is never flashed
    mpy = {f.path: f.data for f in flash.plan("sim", mpy=True)}
    assert "/main.py" in mpy and "/itpump/app.mpy" in mpy and mpy["/itpump/app.mpy"][:2] == b"M\x06"


def test_flash_plan_refuses_unknown_board_and_missing_firmware(tmp_path):
    with pytest.raises(PumpctlError, match="unknown board 'esp32'"):
        flash.plan("esp32")
    (tmp_path / "boards" / "sim").mkdir(parents=True)
    (tmp_path / "boards" / "sim" / "board.py").write_text("NAME = 'sim'\n")
    with pytest.raises(PumpctlError, match="firmware missing"):
        flash.plan("sim", root=tmp_path)
    with pytest.raises(PumpctlError, match="folder name"):
        flash.plan("../etc")


def test_a_copied_board_folder_is_a_board(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(flash.REPO_ROOT / "firmware", tmp_path / "firmware")
    shutil.copytree(flash.REPO_ROOT / "boards" / "rpi_pico2", tmp_path / "boards" / "my_board")
    assert "my_board" in flash.board_names(tmp_path) and flash.board_chip("my_board", tmp_path) == "RP2350"
    marchs = set()
    real = flash.compile_mpy

    def spy(src, march, dest):
        marchs.add(march)
        return real(src, march, dest)

    monkeypatch.setattr(flash, "compile_mpy", spy)
    files = {f.path: f.data for f in flash.plan("my_board", mpy=True, root=tmp_path)}
    assert "/board.mpy" in files and "/itpump/pump.mpy" in files and files["/board.mpy"][:1] == b"M"
    assert marchs == {"armv7emsp"}  # the RP2350's architecture, from the folder's CHIP line
    (tmp_path / "boards" / "my_board" / "board.py").write_text("NAME = 'my_board'\n")  # no CHIP line
    with pytest.raises(PumpctlError, match="must declare its chip"):
        flash.plan("my_board", root=tmp_path)


def test_cli_prints_one_line_and_exits_3_for_no_board(capsys, tmp_path):
    rc = cli.main(["status", "--port", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 3 and err == f"pumpctl: error: no such port: {tmp_path / 'nope'}\n"


def test_vboard_status_when_stopped(tmp_path, capsys):
    rc = cli.main(["vboard", "status", "--dir", str(tmp_path)])
    assert rc == 3 and "not running" in capsys.readouterr().out  # no board
    assert vboard.stop(tmp_path) is False


@pytest.mark.parametrize("target", ["vboard", "epico"])
def test_boards_pumpctl_runs_stop_and_report_alike(tmp_path, capsys, target):
    """The virtual board and the emulated Pico: no board is exit 3 with one line, --json the envelope."""
    import json

    d = str(tmp_path)
    assert cli.main([target, "stop", "--dir", d]) == 3
    noun = "virtual board" if target == "vboard" else "emulated Pico"
    assert capsys.readouterr().err == f"pumpctl: error: no {noun} running\n"
    assert cli.main([target, "status", "--dir", d]) == 3
    assert capsys.readouterr().out == f"not running (state in {d})\n"
    assert cli.main([target, "status", "--dir", d, "--json"]) == 3
    env = json.loads(capsys.readouterr().out)
    assert env["command"] == f"{target} status" and env["ok"] is False and env["result"]["running"] is False
    assert env["error"] == {"type": "NoBoardError", "message": f"no {noun} running", "exit_code": 3}
    assert cli.main([target, "stop", "--dir", d, "--json"]) == 3
    env = json.loads(capsys.readouterr().out)
    assert env["command"] == f"{target} stop" and env["error"]["exit_code"] == 3



@pytest.mark.parametrize("target", ["vboard", "epico"])
def test_stopping_a_board_says_so(tmp_path, capsys, monkeypatch, target):
    """`pumpctl vboard stop` printed nothing when it had stopped one."""
    import importlib

    monkeypatch.setattr(importlib.import_module(f"pumpctl.{target}"), "stop", lambda d: True)
    assert cli.main([target, "stop", "--dir", str(tmp_path)]) == 0
    noun = "virtual board" if target == "vboard" else "emulated Pico"
    assert capsys.readouterr().out == f"{noun} stopped\n"
