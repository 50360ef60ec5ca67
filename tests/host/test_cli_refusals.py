"""Bad command lines are refused before anything reaches the board: options only as spelt in full (no
argparse abbreviations: `bolus --dose 5` is not `--dose-ug 5`), every argument checked before the link
is opened, and each refusal one line with the README's exit code."""

import argparse
import json

import pytest
from test_cli_therapy import board  # noqa: F401  (fixture)

from pumpctl import EXIT_USAGE, cli
from pumpctl import link as linkmod


@pytest.fixture
def no_link(monkeypatch):
    """Fails a test that opens a link, a flash probe or mpremote: a refusal must come before them."""
    opened = []

    def refuse(port, *a, **kw):
        opened.append(port)
        raise AssertionError(f"the link to {port} was opened")

    monkeypatch.setattr(linkmod, "Link", refuse)
    return opened


def _leaves(parser, name="pumpctl"):
    """(command words, parser) of every command and action that runs."""
    for a in parser._actions:  # noqa: SLF001
        if isinstance(a, argparse._SubParsersAction):  # noqa: SLF001
            for n, sp in a.choices.items():
                if any(isinstance(x, argparse._SubParsersAction) for x in sp._actions):  # noqa: SLF001
                    yield from _leaves(sp, f"{name} {n}")
                else:
                    yield f"{name} {n}".split()[1:], sp


def _run(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_no_option_is_taken_abbreviated(no_link, capsys):
    """Every long option of every command, typed one letter short, is refused (exit 2) naming the
    option meant, and nothing runs; argparse took `--dose 5` as `--dose-ug 5` and sent the bolus."""
    tried = 0
    for words, sp in _leaves(cli.build_parser()):
        for a in sp._actions:  # noqa: SLF001
            for opt in a.option_strings:
                if not opt.startswith("--") or opt == "--help" or len(opt) < 5:
                    continue
                argv = [*words, opt[:-1], *(["1"] if a.nargs is None and not a.const else [])]
                rc, out, err = _run(argv, capsys)
                assert rc == EXIT_USAGE, (argv, rc, out, err)
                assert err.count("\n") == 1 and opt in err, (argv, err)
                tried += 1
    assert tried > 40 and no_link == []


def test_the_bolus_of_last_session_is_refused_naming_the_real_options(no_link, capsys):
    rc, out, err = _run(["bolus", "--dose", "5", "--minutes", "10", "-p", "fake"], capsys)
    assert rc == EXIT_USAGE and out == ""
    assert err == ("pumpctl bolus: error: unknown option --dose (did you mean --dose-ug?): it takes --dose-ug, "
                   "--minutes, --prime, --volume-ul, --patient (and --port, --device, --timeout, --json) "
                   "(pumpctl bolus -h for help)\n")
    rc, out, err = _run(["--jso", "status"], capsys)  # the top level's options too
    assert rc == EXIT_USAGE and "unknown option --jso (did you mean --json?)" in err
    rc, out, err = _run(["stat"], capsys)
    assert rc == EXIT_USAGE and "invalid choice: 'stat': did you mean 'status'?" in err and err.count("\n") == 1
    rc, out, err = _run(["ack", "OCCLUSION", "EXTRA"], capsys)
    assert rc == EXIT_USAGE and "unexpected argument EXTRA" in err
    assert no_link == []


def test_full_spellings_still_parse():
    p = cli.build_parser()
    a = p.parse_args(["bolus", "--dose-ug", "5", "--minutes", "10", "--port=X"])
    assert (a.dose_ug, a.minutes, a.port) == ("5", "10", "X")
    a = p.parse_args(["-pX", "--json", "logs", "--format=csv"])
    assert (a.port, a.json, a.format) == ("X", True, "csv")


def test_fwbuild_takes_no_abbreviation_either(monkeypatch, capsys):
    """`fwbuild --stoc` built the stock image: a build is chosen by options spelt in full too."""
    from pumpctl import fwbuild

    monkeypatch.setattr(fwbuild, "build", lambda *a, **kw: pytest.fail("built"))
    with pytest.raises(SystemExit) as e:
        fwbuild.main(["--stoc"])
    assert e.value.code == 2 and "--stoc" in capsys.readouterr().err


@pytest.fixture
def nothing_started(monkeypatch):
    """Fails a test that starts a virtual board or an emulated Pico."""
    from pumpctl import epico, vboard

    for mod in (vboard, epico):
        monkeypatch.setattr(mod, "start", lambda *a, **kw: pytest.fail("a board was started"))


@pytest.mark.parametrize("argv,code,says", [
    # report read the board's whole event log, then refused the file name
    (["report", "--out", "r.txt"], 1, "report --out r.txt: unknown report type '.txt': choose .html, .pdf or .png"),
    (["report", "--out", "report"], 1, "unknown report type '(none)'"),
    (["report", "--out", "{tmp}"], 1, "is a folder, give a file name"),
    (["logs", "--out", "{tmp}"], 1, "is a folder, give a file name"),
    # logs checked these after opening the link (exit 1), or never (--interval 0 polled without pause)
    (["logs", "--since", "-3"], 2, "argument --since: -3 is out of range: at least 0"),
    (["logs", "--page", "0"], 2, "argument --page: 0 is out of range: 1..200"),
    (["logs", "--page", "201"], 2, "1..200"),
    (["logs", "--follow", "--interval", "0"], 2, "argument --interval: 0 must be a positive number of seconds"),
    (["logs", "--follow", "--interval", "nan"], 2, "--interval"),
    # ack sent any code, signed, for the board to refuse (exit 4)
    (["ack", "OCLUSION"], 2, "ack: unknown alarm 'OCLUSION' (did you mean OCCLUSION?); the codes: OCCLUSION, LEAK"),
    (["ack", ""], 2, "unknown alarm ''"),
    # web: a traceback (OverflowError from bind)
    (["web", "--http-port", "70000"], 2, "argument --http-port: 70000 is out of range: 1..65535"),
    (["web", "--http-port", "0"], 2, "1..65535"),
    # usage (README: a missing or malformed argument is exit 2), said before anything is sent
    (["bolus", "--dose-ug", "5"], 2, "bolus: --minutes N is required"),
    (["bolus", "--minutes", "5"], 2, "bolus: give --dose-ug X (clinician), --prime, or --patient"),
    (["bolus", "--dose-ug", "abc", "--minutes", "5"], 2, "--dose-ug 'abc' is not a number"),
    (["bolus", "--patient", "--minutes", "5"], 2, "takes no dose or duration"),
    (["calibrate", "--steps", "10"], 2, "calibrate: give --mass-mg X (the weighed water) or --measured-ul V"),
    (["program", "examples/morphine_continuous.toml", "--json"], 2, "program --json asks no question: add --yes"),
    # calibrate sent --steps 10**12, signed, for the board to refuse (ARGS, exit 4)
    (["calibrate", "--measured-ul", "100", "--steps", "1000000000000"], 2, "argument --steps: 1000000000000 is out "
                                                                           "of range: 1..1073741823"),
    # refill sent a prescription for another drug, signed, for the pump to refuse (MISMATCH, exit 4)
    (["refill", "--drug", "morphine", "--conc-ug-per-ml", "10000", "--added-ml", "1", "--removed-ml", "0", "--rx",
      "examples/baclofen_flex.toml"], 1, "refill: --rx is for baclofen 2 mg/mL, the refill is morphine 10 mg/mL: "
                                         "give the prescription for what goes in the reservoir"),
    (["refill", "--drug", "morphine", "--conc-ug-per-ml", "20000", "--added-ml", "1", "--removed-ml", "0", "--rx",
      "examples/morphine_continuous.toml"], 1, "--rx is for morphine 10 mg/mL, the refill is morphine 20 mg/mL"),
    # a bad value is an error (exit 1), still before the link
    (["bolus", "--dose-ug", "0.0001", "--minutes", "5"], 1, "finer than the pump's step"),
])
def test_bad_input_is_refused_before_the_link_is_opened(argv, code, says, no_link, capsys, tmp_path, monkeypatch):
    from test_cli_therapy import ROOT

    monkeypatch.chdir(ROOT)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--json" not in argv:
        rc, out, err = _run([*argv, "-p", "fake"], capsys)
        assert rc == code and says in err and err.count("\n") == 1, (argv, rc, out, err)
    rc, out, err = _run([*argv, "-p", "fake", "--json"], capsys)  # the same refusal in the JSON envelope
    env = json.loads(out)
    assert rc == code and env["ok"] is False and env["error"]["exit_code"] == code and says in env["error"]["message"]
    assert err == "" and no_link == []


@pytest.mark.parametrize("argv,says", [
    (["vboard", "start", "--speed", "nan"], "argument --speed: nan must be a number > 0"),
    (["vboard", "start", "--speed", "0"], "must be a number > 0"),
    (["vboard", "start", "--speed", "inf"], "must be a number > 0"),
    (["vboard", "start", "--heap", "lots"], "argument --heap: 'lots' is not a heap size"),
    (["epico", "start", "--speed", "-1"], "must be a number > 0"),
])
def test_a_board_is_not_started_with_bad_options(argv, says, nothing_started, capsys):
    """--speed nan started a virtual board whose clock never moved (nan <= 0 is False)."""
    rc, out, err = _run(argv, capsys)
    assert rc == EXIT_USAGE and says in err and err.count("\n") == 1, (argv, err)


def test_a_path_that_is_no_serial_port_says_so(capsys, tmp_path):
    """-p /tmp said "no such port: /tmp" (its errno 21 matched "Errno 2"); a plain file said "Could not
    configure port: (25, 'Inappropriate ioctl for device')"."""
    f = tmp_path / "notes.txt"
    f.write_text("x")
    for port, says in ((str(tmp_path), f"not a serial port: {tmp_path} is a folder"),
                       (str(f), f"not a serial port: {f}"),
                       (str(tmp_path / "nope"), f"no such port: {tmp_path / 'nope'}")):
        rc, out, err = _run(["status", "-p", port], capsys)
        assert rc == 3 and err == f"pumpctl: error: {says}\n", (port, err)


def test_a_board_at_the_repl_is_told_how_to_run_itpump_again():
    """Seen on the virtual board after `mpremote ... ls :`: the board waits at ">>> " and every command
    said "firmware missing? run: pumpctl flash", sending people to re-flash a board that only needed
    `pumpctl restart`."""
    from test_client_recovery import Link

    from pumpctl.client import Client, NoReplyError

    class AtRepl(Link):
        def pending_text(self):
            return b"MicroPython v1.28.0 on 2026-01-01; linux [GCC 12.2.0] version\r\n>>> "

    lk = AtRepl(lambda req: [])
    with pytest.raises(NoReplyError) as e:
        Client(lk, timeout_s=1.0, clock=lk.clock).request("status")
    assert str(e.value) == ("board on fake is at the MicroPython REPL, itpump is not running: pumpctl restart "
                            "--port fake runs it (pumpctl flash if its firmware is missing)")
    assert e.value.exit_code == 5


def test_a_privileged_http_port_is_not_called_in_use(monkeypatch):
    """As a user, --http-port 80 said "127.0.0.1:80 is in use (another pumpctl web?)"."""
    import socket

    from pumpctl import PumpctlError, web

    def bind(self, addr):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", bind)
    with pytest.raises(PumpctlError, match=r"127.0.0.1:80: not allowed to serve on it \(ports below 1024 need "
                                           r"root\): choose another with --http-port N"):
        web.serve("/dev/no-such-port", http_port=80)


def test_a_missing_command_or_action_names_the_choices(capsys):
    rc, out, err = _run([], capsys)
    assert rc == EXIT_USAGE and err == "pumpctl: error: a COMMAND is required (pumpctl -h for help)\n"
    rc, out, err = _run(["vboard"], capsys)
    assert rc == EXIT_USAGE and err == ("pumpctl vboard: error: an ACTION is required: start, stop, status "
                                        "(pumpctl vboard -h for help)\n")
    rc, out, err = _run(["time"], capsys)
    assert rc == EXIT_USAGE and "an ACTION is required: sync" in err


def test_flash_refuses_an_unknown_board_before_looking_for_one(comports, no_vboard, capsys):
    """With no board attached, `flash --board esp32` said "no port given and no board found" (exit 3):
    the typo is the first thing to fix, and it is known without a board."""
    comports()
    rc, out, err = _run(["flash", "--board", "esp32"], capsys)
    assert rc == 1 and err.startswith("pumpctl: error: unknown board 'esp32'") and err.count("\n") == 1, err


def test_port_and_device_together_must_name_the_same_board(board, capsys, monkeypatch):  # noqa: F811
    """`-p PORT --device ID` used PORT and ignored ID: a bolus meant for one pump went to whichever pump
    was on that port (signed with that pump's own keys, so it was accepted)."""
    from test_cli_therapy import programmed, sent

    programmed(board, capsys)
    n = len(sent(board))
    rc, out, err = _run(["bolus", "--dose-ug", "5", "--minutes", "10", "-p", "fake", "--device", "pico-other"], capsys)
    assert rc == 3 and err == ("pumpctl: error: the board on fake is device fake-0001, not pico-other: nothing sent "
                               "(check --port and --device)\n"), err
    assert len(sent(board)) == n
    rc, out, err = _run(["status", "-p", "fake", "--device", "fake-0001", "--json"], capsys)
    assert rc == 0 and json.loads(out)["result"]["device_id"] == "fake-0001"
    from pumpctl import web  # web took --port and never looked at --device

    monkeypatch.setattr(web, "serve", lambda *a, **kw: pytest.fail("served"))
    rc, out, err = _run(["web", "-p", "fake", "--device", "pico-other"], capsys)
    assert rc == 3 and "not pico-other" in err


def test_ctrl_c_is_one_line_or_one_envelope(monkeypatch, capsys):
    """With --json, Ctrl-C printed nothing on stdout: a script reading the envelope read nothing."""
    from pumpctl.commands import board as board_cmds

    def interrupted(_s):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "status", cli.Command("show the board's status", interrupted,
                                                            board_cmds.show_status))
    rc, out, err = _run(["status", "-p", "fake"], capsys)
    assert rc == 130 and out == "" and err == ("pumpctl: interrupted (Ctrl-C): a request already sent may have "
                                               "been done; check with pumpctl status\n")
    rc, out, err = _run(["status", "-p", "fake", "--json"], capsys)
    env = json.loads(out)
    assert rc == 130 and env["ok"] is False and env["error"]["exit_code"] == 130 and err == ""
