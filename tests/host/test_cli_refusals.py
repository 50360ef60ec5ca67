"""Bad command lines are refused before anything reaches the board: options only as spelt in full (no
argparse abbreviations: `bolus --dose 5` is not `--dose-ug 5`), every argument checked before the link
is opened, and each refusal one line with the README's exit code."""

import argparse

import pytest

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
