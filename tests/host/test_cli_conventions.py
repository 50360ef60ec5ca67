"""pumpctl's command line against the conventions users know (issue 13): options before or after the
subcommand, positive timeouts, distinct exit codes, one JSON envelope, VID:PID detection, one-line errors
for the tracebacks users met, and refusals that come at once."""

import json

import pytest
from test_cli_therapy import ROOT, board, pc, programmed, sent  # noqa: F401  (fixtures)

from pumpctl import EXIT_LINK, EXIT_NO_BOARD, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_USAGE, NoBoardError, cli, link


def test_port_and_timeout_before_or_after_the_subcommand():
    p = cli.build_parser()
    for argv in (["-p", "X", "status"], ["--port", "X", "status"], ["status", "-p", "X"]):
        a = p.parse_args(argv)
        assert a.port == "X" and a.timeout == 3.0 and a.json is False, argv
    a = p.parse_args(["--timeout", "7", "--json", "status"])
    assert a.timeout == 7.0 and a.json is True and a.port is None
    a = p.parse_args(["-p", "A", "status", "-p", "B", "--timeout", "1.5"])
    assert a.port == "B" and a.timeout == 1.5  # the later (closer) one wins
    assert p.parse_args(["-p", "X", "vboard", "status"]).port == "X"


@pytest.mark.parametrize("bad", ["-1", "0", "nan", "inf", "x"])
def test_timeout_must_be_positive(capsys, bad):
    for argv in (["--timeout", bad, "status"], ["status", "--timeout", bad]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == EXIT_USAGE
        assert "--timeout" in capsys.readouterr().err


def test_no_board_is_exit_3_and_json_errors_use_the_envelope(comports, no_vboard, capsys):
    comports()
    assert cli.main(["status"]) == EXIT_NO_BOARD
    err = capsys.readouterr().err
    assert err.startswith("pumpctl: error: no port given and no board found") and err.count("\n") == 1
    assert cli.main(["status", "--json"]) == EXIT_NO_BOARD
    env = json.loads(capsys.readouterr().out)
    assert env["schema"] == 1 and env["command"] == "status" and env["ok"] is False
    assert env["error"]["exit_code"] == EXIT_NO_BOARD and "no board found" in env["error"]["message"]
    assert cli.main(["-p", "/dev/does-not-exist", "ping"]) == EXIT_NO_BOARD


def test_a_busy_port_is_a_link_error(monkeypatch, capsys):
    import serial

    def busy(*a, **kw):
        raise serial.SerialException("[Errno 11] could not exclusively lock port /dev/ttyACM0")

    monkeypatch.setattr(serial, "Serial", busy)
    assert cli.main(["-p", "/dev/ttyACM0", "status"]) == EXIT_LINK
    assert "port busy" in capsys.readouterr().err


def test_detection_takes_micropython_boards_only(comports, no_vboard, capsys):
    """A Raspberry Pi Debug Probe is USB 2E8A too (2E8A:000C): not a board to talk to."""
    comports(("/dev/ttyACM0", 0x2E8A, 0x000C, "E6614C", "Debugprobe on Pico (CMSIS-DAP)"),
             ("/dev/ttyACM1", 0x2E8A, 0x0005, "E660D4A0A7", "Board in FS mode"),
             ("/dev/ttyUSB0", 0x10C4, 0xEA60))
    assert link.find_ports() == ["/dev/ttyACM1"]
    assert cli.resolve_port(None) == "/dev/ttyACM1"
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert out == "/dev/ttyACM1  serial E660D4A0A7  Board in FS mode\n"
    assert cli.main(["ports", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert env["command"] == "ports" and env["result"] == [
        {"port": "/dev/ttyACM1", "serial": "E660D4A0A7", "product": "Board in FS mode", "vid_pid": "2E8A:0005"}]


def test_a_board_is_chosen_by_device_id(monkeypatch, comports, no_vboard):
    comports(("/dev/ttyACM0", 0x2E8A, 5), ("/dev/ttyACM1", 0x2E8A, 5))
    ids = {"/dev/ttyACM0": {"device_id": "pico-aa"}, "/dev/ttyACM1": {"device_id": "pico-bb"}}
    monkeypatch.setattr(cli, "probe", lambda port, timeout_s=2.0: ids[port])
    assert cli.resolve_port(None, "pico-bb") == "/dev/ttyACM1"
    with pytest.raises(NoBoardError, match="no board with device id pico-cc"):
        cli.resolve_port(None, "pico-cc")
    with pytest.raises(NoBoardError, match="--device ID"):
        cli.resolve_port(None)


def test_reporting_commands_speak_the_json_envelope(board, capsys):  # noqa: F811
    programmed(board, capsys)
    for argv, key in ((["status", "--json"], "fw"), (["--json", "therapy"], "rx"), (["alarms", "--json"], "active"),
                      (["ping", "--json"], "pong"), (["--json", "suspend"], "suspended"),
                      (["resume", "--json"], "suspended"), (["logs", "--json"], "records")):
        rc, out, err = pc(capsys, *argv)
        assert rc == 0, err
        env = json.loads(out)
        assert set(env) == {"schema", "command", "ok", "result"} and env["ok"] is True, argv
        assert env["command"] == [x for x in argv if not x.startswith("-")][0] and key in env["result"]


def test_refused_by_the_board_is_exit_4_and_resume_says_resume(board, capsys):  # noqa: F811
    rc, out, err = pc(capsys, "resume")
    assert rc == EXIT_REFUSED and err.startswith("pumpctl: error: resume: "), err
    assert "suspend" not in err.split(":", 3)[2]
    rc, out, err = pc(capsys, "resume", "--json")
    env = json.loads(out)
    assert rc == EXIT_REFUSED and env["ok"] is False and env["error"]["code"] and env["command"] == "resume"


def test_an_absurd_bolus_is_refused_before_signing(board, capsys):  # noqa: F811
    programmed(board, capsys)
    n = len(board.changes())
    rc, out, err = pc(capsys, "bolus", "--dose-ug", "1e9", "--minutes", "10")
    assert rc == 1 and "--dose-ug 1e9: must be at most 1073741.823" in err and err.count("\n") == 1
    assert len(board.changes()) == n  # nothing signed, nothing sent, no counter spent


def test_a_prescription_that_is_not_utf8_is_one_line(board, capsys, tmp_path):  # noqa: F811
    f = tmp_path / "rx.toml"
    f.write_bytes((ROOT / "examples/hydromorphone_patient_bolus.toml").read_bytes().replace(b"#", b"\xe9#", 1)
                  + b"\n# \xff\xfe\n")
    for argv in (["program", str(f), "--yes"],
                 ["refill", "--drug", "x", "--conc-ug-per-ml", "1", "--added-ml", "1", "--removed-ml", "0",
                  "--rx", str(f)]):
        rc, out, err = pc(capsys, *argv)
        assert rc == 1 and "not UTF-8" in err and err.count("\n") == 1, err
    assert board.changes() == []


def test_logs_plot_into_a_missing_folder_or_an_unknown_type_is_one_line(board, capsys, tmp_path):  # noqa: F811
    n = len(board.written)
    for plot, msg in ((str(tmp_path / "nope" / "x.png"), "does not exist"), (str(tmp_path / "x.xyz"), "image type")):
        rc, out, err = pc(capsys, "logs", "--plot", plot)
        assert rc == 1 and msg in err and err.count("\n") == 1, err
    rc, out, err = pc(capsys, "logs", "--out", str(tmp_path / "nope" / "x.csv"))
    assert rc == 1 and "does not exist" in err
    assert len(board.written) == n  # refused before the board was asked


def test_restart_is_refused_at_once_while_therapy_runs(board, capsys, monkeypatch):  # noqa: F811
    from pumpctl import mpr

    programmed(board, capsys)
    monkeypatch.setattr(mpr, "Device", lambda port: pytest.fail("restart interrupted a running pump"))
    rc, out, err = pc(capsys, "restart")
    assert rc == EXIT_REFUSED and "pumpctl restart --service" in err and err.count("\n") == 1


def test_version_names_the_firmware_too(board, capsys):  # noqa: F811
    rc, out, err = pc(capsys, "--version")
    assert rc == 0 and out.startswith("pumpctl ") and "firmware: itpump " in out


def test_version_without_a_board(comports, no_vboard, capsys):
    comports()
    assert cli.main(["--version"]) == 0
    assert "firmware: unknown" in capsys.readouterr().out


def test_shell_completion_is_printed(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--print-completion", "bash"])
    assert e.value.code == 0 and "pumpctl" in capsys.readouterr().out


def test_the_command_table_is_the_parser():
    """One table (cli.COMMANDS) names every command: the parser lists exactly its names in its order,
    and each command (or action of a group) has a help line and a handler."""
    p = cli.build_parser()
    choices = p._subparsers._group_actions[0].choices  # noqa: SLF001
    assert list(choices) == list(cli.COMMANDS)
    assert {"status", "flash", "restart", "program", "bolus", "logs", "resume", "vboard", "epico"} <= set(choices)
    for name, c in cli.COMMANDS.items():
        for action, ac in (c.actions or {name: c}).items():
            assert ac.help and callable(ac.run), (name, action)
    assert list(cli.COMMANDS["vboard"].actions) == list(cli.COMMANDS["epico"].actions) == ["start", "stop", "status"]


def test_every_argument_says_what_it_is_in_help():
    """refill --drug, ack CODE, program FILE.toml and logs --format had no help line."""
    import argparse

    missing = []

    def walk(parser, name):
        for a in parser._actions:  # noqa: SLF001
            if isinstance(a, argparse._SubParsersAction):  # noqa: SLF001
                for n, sp in a.choices.items():
                    walk(sp, f"{name} {n}")
            elif not a.help:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")

    walk(cli.build_parser(), "pumpctl")
    assert missing == []


def test_exit_codes_are_distinct():
    import pumpctl

    codes = [pumpctl.EXIT_ERROR, EXIT_USAGE, EXIT_NO_BOARD, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_LINK]
    assert codes == [1, 2, 3, 4, 5, 6]


def _envelope(out: str, command: str, ok: bool) -> dict:
    env = json.loads(out)
    assert env["schema"] == 1 and env["command"] == command and env["ok"] is ok, env
    assert ("error" in env) is (not ok) and set(env) <= {"schema", "command", "ok", "result", "error"}
    return env


def test_every_command_speaks_the_one_json_shape(board, capsys, tmp_path, monkeypatch):  # noqa: F811
    """drugs, history and report printed bare JSON or plain text with --json; therapy --toml ignored it."""
    monkeypatch.setenv("ITPUMP_DATA_DIR", str(tmp_path))
    programmed(board, capsys)
    assert cli.main(["drugs", "--json"]) == 0
    assert "morphine" in _envelope(capsys.readouterr().out, "drugs", True)["result"]
    assert cli.main(["history", "--json"]) == 0
    assert _envelope(capsys.readouterr().out, "history", True)["result"][0]["device_id"] == "fake-0001"
    rc, out, err = pc(capsys, "report", "--json", "--out", str(tmp_path / "r.html"))
    r = _envelope(out, "report", True)["result"]
    assert rc == 0 and r["out"] == str(tmp_path / "r.html") and r["log_records"] > 0 and (tmp_path / "r.html").exists()
    rc, out, err = pc(capsys, "therapy", "--toml", "--json")
    r = _envelope(out, "therapy", True)["result"]
    assert rc == 0 and r["rx_id"] and 'drug = "hydromorphone"' in r["toml"]
    rc, out, err = pc(capsys, "--version", "--json")
    assert rc == 0 and _envelope(out, "--version", True)["result"]["firmware"]


def test_json_errors_are_the_envelope_usage_errors_too(board, capsys, tmp_path):  # noqa: F811
    rc, out, err = pc(capsys, "report", "--json", "--out", str(tmp_path / "nope" / "r.html"))
    env = _envelope(out, "report", False)
    assert rc == 1 and "does not exist" in env["error"]["message"] and err == ""
    for argv, command in ((["status", "--timeout", "-1", "--json"], "status"),
                          (["--json", "calibrate", "--steps", "x"], "calibrate"),
                          (["--json", "vboard"], "vboard"), (["--json", "nosuch"], ""),
                          (["--json", "ack", "--bogus"], "ack"),
                          (["logs", "--json", "--follow"], "logs"), (["web", "--json"], "web")):
        try:
            rc = cli.main([*argv, "--port", "fake"])
        except SystemExit as e:
            rc = e.code
        out, err = capsys.readouterr()
        assert rc == EXIT_USAGE and err == "", (argv, err)
        assert _envelope(out, command, False)["error"]["exit_code"] == EXIT_USAGE, argv
