"""pumpctl command line: one table of commands (COMMANDS), each a handler that does the work and returns
its result, its own arguments, and how a person sees the result (render.py). The driver here parses,
runs, and prints the result as text or, with --json, in one envelope {"schema", "command", "ok",
"result", "error"} for every command and every error, usage errors included; every error is one line
and a distinct exit code (README: Exit codes)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import EXIT_ERROR, EXIT_USAGE, Interrupted, NoBoardError, PumpctlError, UsageError
from .commands import DONE, board, clinic, logs, therapy

JSON_SCHEMA = 1
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Command:
    """One command: run(state) does the work and returns the result (printed by --json); show(result,
    state) writes what a person reads; args(parser) adds the command's own arguments; board: it talks
    to a board (takes --port, --device, --timeout); actions: sub-commands (vboard start ...);
    then(result, state): what runs after the report (logs --follow: a stream)."""

    help: str
    run: Callable[[State], Any] | None = None
    show: Callable[[Any, State], None] | None = None
    args: Callable[[argparse.ArgumentParser], None] | None = None
    board: bool = True
    actions: dict[str, Command] = field(default_factory=dict)
    then: Callable[[Any, State], None] | None = None


class State:
    """What a handler runs with: the parsed arguments, the board's port (found on first use) and a
    session over the link; failure: the error of a command that reports its result and still fails
    (log problems, no board running), set by fail()."""

    def __init__(self, args: argparse.Namespace, command: Command):
        self.args = args
        self.command = command
        self.failure: PumpctlError | None = None
        self.notes: dict[str, Any] = {}  # what a show_* needs beyond the result (not part of --json)
        self._port: str | None = None

    @property
    def port(self) -> str:
        if self._port is None:
            self._port = resolve_port(self.args.port, getattr(self.args, "device", None))
        return self._port

    @property
    def exit_code(self) -> int:
        return 0 if self.failure is None else self.failure.exit_code

    def fail(self, error: PumpctlError) -> None:
        """The command still reports its result, then exits with error's code (--json: ok false)."""
        self.failure = error

    def emit(self, result: Any) -> None:
        """The command's report: the JSON envelope with --json, else its text."""
        if getattr(self.args, "json", False):
            print_envelope(command_name(self.args), result=result, error=self.failure)
        elif self.command.show is not None:
            self.command.show(result, self)

    @contextlib.contextmanager
    def session(self) -> Iterator:
        from .client import Client
        from .link import Link
        from .session import Session

        with Link(self.port) as link:
            yield Session(Client(link, timeout_s=self.args.timeout))


def positive_seconds(text: str) -> float:
    return positive_number(text, "seconds")


def positive_number(text: str, unit: str = "") -> float:
    """A finite number > 0 (nan, inf, 0 and negatives refused): a factor such as --speed, or a quantity
    of unit (--timeout, --interval)."""
    what = f"a number of {unit}" if unit else "a number"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of {unit}" if unit
                                         else f"{text} must be a number > 0")
    return v


def whole_number(least: int = 0, most: int | None = None) -> Callable[[str], int]:
    """A type for a count or index (--since, --page, --http-port): digits only, within least..most."""

    def parse(text: str) -> int:
        t = text.strip()
        if not (t.isdigit() or t[:1] == "-" and t[1:].isdigit()):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        v = int(t)
        if v < least or most is not None and v > most:
            raise argparse.ArgumentTypeError(f"{v} is out of range: " + (f"{least}..{most}" if most is not None
                                                                      else f"at least {least}"))
        return v

    parse.__name__ = "whole number"
    return parse


# -- the command table (in the order `pumpctl --help` lists them) -----------------------------------

COMMANDS: dict[str, Command] = {
    "status": Command("show the board's status", board.status, board.show_status),
    "ping": Command("check that itpump answers", board.ping, board.show_ping),
    "flash": Command("copy firmware + board files, verify, restart", board.flash, board.show_flash,
                     board.flash_args),
    "restart": Command("restart the firmware (e.g. after mpremote left it at the REPL)", board.restart,
                       board.show_restarted, board.restart_args),
    "vboard": Command("the virtual board (real MicroPython + simulated pump)",
                      actions=board.target_actions("vboard")),
    "ports": Command("list attached MicroPython boards (USB 2E8A:0005): port, serial, product", board.ports,
                     board.show_ports, board.ports_args, board=False),
    "provision": Command("new keys for the board (keystore + /keys.json), at rest", therapy.provision,
                         therapy.show_provision, therapy.provision_args),
    "therapy": Command("show the current prescription", therapy.therapy, therapy.show_therapy,
                       therapy.therapy_args),
    "program": Command("program a prescription (TOML): validate, diff, confirm, send", therapy.program,
                       therapy.show_program, therapy.program_args),
    "bolus": Command("clinician bolus (--dose-ug), catheter prime (--prime) or the patient's bolus (--patient)",
                     therapy.bolus, therapy.show_bolus, therapy.bolus_args),
    "refill": Command("record a refill of the reservoir", therapy.refill, therapy.show_refill, therapy.refill_args),
    "calibrate": Command("set volume per step from a weighed delivery (docs/hardware.md: Calibration)",
                         therapy.calibrate, therapy.show_calibrate, therapy.calibrate_args),
    "suspend": Command("suspend delivery", therapy.suspend, therapy.show_suspend),
    "resume": Command("resume delivery", therapy.resume, therapy.show_suspend),
    "alarms": Command("active alarms", therapy.alarms, therapy.show_alarms, therapy.alarms_args),
    "ack": Command("acknowledge an alarm (its code, or 'all')", therapy.ack, therapy.show_ack, therapy.ack_args),
    "time": Command("the board's clock", board=False, actions={
        "sync": Command("set it from this computer's clock and time zone", therapy.time_sync,
                        therapy.show_time_sync)}),
    "service": Command("service access: suspend delivery, open the REPL (service key)", therapy.service,
                       therapy.show_service),
    "logs": Command("read the event log over the link", logs.logs, logs.show_logs, logs.logs_args,
                    then=logs.follow_logs),
    "report": Command("a one-page therapy report (HTML, PDF or PNG by --out's suffix)", clinic.report,
                      clinic.show_report, clinic.report_args),
    "web": Command("the local web programmer on 127.0.0.1 (prints one-time links; owns the link while it runs)",
                   clinic.web, None, clinic.web_args),
    "drugs": Command("the drug library: concentrations and daily doses the pump accepts", clinic.drugs,
                     clinic.show_drugs, board=False),
    "history": Command("prescriptions sent from this computer (who, when, what)", clinic.history,
                       clinic.show_history, clinic.history_args, board=False),
    "epico": Command("the emulated Pico (official rp2 MicroPython on rp2040js, needs node)",
                     actions=board.target_actions("epico")),
}
COMMON_DESTS = ("port", "device", "timeout", "json")  # the options every board command takes (_common)
ACTION_DEST = {"vboard": "vcmd", "time": "tcmd", "epico": "ecmd"}  # where argparse puts a group's action


# -- resolving the board ---------------------------------------------------------------------------


def resolve_port(port: str | None, device: str | None = None) -> str:
    """--port, else $ITPUMP_PORT, else the running default virtual board, else one attached Pico
    (USB 2E8A:0005, MicroPython); with --device, the board (virtual or attached) whose id it is, and with
    both, the port only if its board is that device (a change never goes to another pump)."""
    if port and device:
        found = probe(port).get("device_id")
        if found != device:
            raise NoBoardError(f"the board on {port} is " + (f"device {found}" if found else "not an itpump that "
                               "answers") + f", not {device}: nothing sent (check --port and --device)")
        return port
    if port:
        return port
    if device:
        return port_of_device(device)
    if os.environ.get("ITPUMP_PORT"):
        return os.environ["ITPUMP_PORT"]
    from . import vboard
    from .link import find_ports

    st = vboard.status()
    if st["running"]:
        return st["port"]
    found = find_ports()
    if len(found) == 1:
        return found[0]
    if not found:
        raise NoBoardError("no port given and no board found (no MicroPython USB device 2E8A:0005, no "
                           "virtual board running): use --port PORT or `pumpctl vboard start`")
    raise NoBoardError(f"several boards attached ({', '.join(found)}): choose one with --port or "
                       "--device ID (pumpctl ports --probe lists their ids)")


def probe(port: str, timeout_s: float = 2.0) -> dict:
    """The status of the itpump on port, or {"error": one line} (busy, not itpump, no answer)."""
    from .client import Client
    from .link import Link

    try:
        with Link(port) as link:
            return Client(link, timeout_s=timeout_s).request("status")
    except PumpctlError as e:
        return {"error": str(e)}


def port_of_device(device: str) -> str:
    from . import vboard
    from .link import find_ports

    candidates = list(find_ports())
    st = vboard.status()
    if st["running"]:
        candidates.insert(0, st["port"])
    if os.environ.get("ITPUMP_PORT"):
        candidates.insert(0, os.environ["ITPUMP_PORT"])
    for p in dict.fromkeys(candidates):
        if probe(p).get("device_id") == device:
            return p
    raise NoBoardError(f"no board with device id {device} found (looked at {', '.join(candidates) or 'none'})")


# -- the parser, from the table ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """pumpctl's parsers. Options are taken only as spelt in full (no argparse abbreviations: on a drug
    pump `--dose 5` must not quietly mean `--dose-ug 5`); an unknown option is refused naming the
    command's real ones. A usage error is one line on stderr, exit 2; with --json on the command line
    (json_argv: that command line) it is the JSON envelope instead, so a script reading --json output
    always reads JSON."""

    def __init__(self, *args, json_argv: list[str] | None = None, **kw):
        self.json_argv = json_argv
        self.leaves: dict[str, argparse.ArgumentParser] = {}  # the top parser's: each command's own parser
        super().__init__(*args, allow_abbrev=False, **kw)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self.argv = list(sys.argv[1:] if args is None else args)  # for error(): an unknown option first
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            leaf = self.leaves.get(command_name(ns), self)
            leaf.error(unknown_arguments_text(leaf, extras))
        return ns

    def error(self, message: str):  # type: ignore[override]
        mine = {o for a in self._actions for o in a.option_strings}  # noqa: SLF001
        unknown = [x for x in getattr(self, "argv", ()) if x.startswith("--") and x.split("=", 1)[0] not in mine]
        if unknown and "required" in message:  # `refill --dru x`: say --dru, the cause, not "--drug required"
            message = unknown_arguments_text(self, unknown)
        elif message == "the following arguments are required: ACTION":
            message = "an ACTION is required: " + ", ".join(self._subparsers._group_actions[0].choices)  # type: ignore[union-attr]  # noqa: SLF001
        message = _suggest_choice(message)
        if self.json_argv is None:
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message} ({self.prog} -h for help)\n")
        name = self.prog.removeprefix("pumpctl").strip()  # the top parser: the command typed, if any
        print_envelope(name or next((a for a in self.json_argv if a in COMMANDS), ""), error=UsageError(message))
        sys.exit(EXIT_USAGE)


def unknown_arguments_text(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """What argparse calls "unrecognized arguments", said for a person: the unknown options (with the
    nearest real one) and the options the command does take; a stray value when no option is unknown."""
    import difflib

    actions = [a for a in parser._actions if a.option_strings and a.dest != "help"]  # noqa: SLF001
    known = [o for a in actions for o in a.option_strings if o.startswith("--")]
    unknown = [x.split("=", 1)[0] for x in extras if x.startswith("-") and len(x) > 1]
    if not unknown:
        return f"unexpected argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}"
    parts = []
    for u in unknown:
        near = difflib.get_close_matches(u, known, n=1, cutoff=0.6)
        parts.append(f"{u} (did you mean {near[0]}?)" if near else u)
    own = [a.option_strings[-1] for a in actions if a.dest not in COMMON_DESTS]
    common = [a.option_strings[-1] for a in actions if a.dest in COMMON_DESTS]
    takes = ", ".join(own) + (f" (and {', '.join(common)})" if own and common else ", ".join(common))
    return f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(parts)}: it takes {takes or 'none'}"


def _suggest_choice(message: str) -> str:
    """argparse's "invalid choice: 'stat' (choose from ...)" with the nearest choice named first."""
    import difflib
    import re

    m = re.fullmatch(r"(argument \S+: invalid choice: '(.*)') \(choose from (.*)\)", message)
    if not m:
        return message
    choices = re.findall(r"'([^']*)'", m.group(3))
    near = difflib.get_close_matches(m.group(2), choices, n=1, cutoff=0.6)
    return m.group(1) + (f": did you mean '{near[0]}'?" if near else "") + f" (choose from {m.group(3)})"


def build_parser(json_argv: list[str] | None = None) -> argparse.ArgumentParser:
    p = _Parser(prog="pumpctl", description="Host tools for the itpump pump firmware.",
                epilog="exit codes: 0 ok, 1 error, 2 usage, 3 no board, 4 refused, 5 timeout, 6 link error",
                json_argv=json_argv)
    p.add_argument("--version", action="store_true", help="show pumpctl's version and the firmware's")
    _common(p, argparse_default=True)
    with contextlib.suppress(ImportError):  # completion is a convenience: pumpctl works without it
        import shtab

        shtab.add_argument_to(p, ["--print-completion"], help="print a shell completion script (bash, zsh, "
                                                             "tcsh) and exit")
    parser_class = functools.partial(_Parser, json_argv=json_argv)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=parser_class)
    for name, c in COMMANDS.items():
        sp = p.leaves[name] = sub.add_parser(name, help=c.help)
        if c.actions:
            asub = sp.add_subparsers(dest=ACTION_DEST[name], required=True, metavar="ACTION",
                                     parser_class=parser_class)
            for action, ac in c.actions.items():
                _add(p.leaves.setdefault(f"{name} {action}", asub.add_parser(action, help=ac.help)), ac)
        else:
            _add(sp, c)
    return p


def _add(sp: argparse.ArgumentParser, c: Command) -> None:
    if c.board:
        _common(sp, argparse_default=False)
    if c.args:
        c.args(sp)
    if not c.board:
        _json_flag(sp)
    sp.set_defaults(command=c)


def _common(sp, argparse_default: bool) -> None:
    """--port/-p, --device, --timeout and --json, on the top level (defaults) and on each subcommand
    (no defaults, so `pumpctl -p X status` and `pumpctl status -p X` both work)."""
    d = (lambda v: v) if argparse_default else (lambda v: argparse.SUPPRESS)
    sp.add_argument("-p", "--port", default=d(None),
                    help="serial port (default: $ITPUMP_PORT, the running virtual board, or the one attached "
                         "Pico)")
    sp.add_argument("-d", "--device", metavar="ID", default=d(None),
                    help="the board with this device id (pumpctl ports --probe lists them)")
    sp.add_argument("--timeout", type=positive_seconds, default=d(DEFAULT_TIMEOUT_S),
                    help=f"reply timeout in seconds (default {DEFAULT_TIMEOUT_S:g})")
    _json_flag(sp, default=d(False))


def _json_flag(sp, default=argparse.SUPPRESS) -> None:
    sp.add_argument("--json", action="store_true", default=default,
                    help=f"machine-readable output: {{schema: {JSON_SCHEMA}, command, ok, result, error}} "
                         "(README: JSON output)")


# -- running a command ------------------------------------------------------------------------------


def command_name(a) -> str:
    if getattr(a, "version", False):
        return "--version"
    return " ".join(str(x) for x in (getattr(a, "cmd", None), *(getattr(a, d, None) for d in ACTION_DEST.values()))
                    if x)


def print_envelope(command: str, result: Any = None, error: PumpctlError | None = None) -> None:
    """The one --json shape: ok is true exactly when the exit code is 0; result when the command has
    one (also beside an error: the log records read before the problems); error when ok is false."""
    env: dict[str, Any] = {"schema": JSON_SCHEMA, "command": command, "ok": error is None}
    if error is None or result is not None:
        env["result"] = result
    if error is not None:
        env["error"] = {"type": type(error).__name__, "message": str(error), "exit_code": error.exit_code}
        if getattr(error, "code", None):
            env["error"]["code"] = error.code  # type: ignore[attr-defined]
    print(json.dumps(env, indent=2, sort_keys=True, default=str))


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:  # `| head` closed the pipe: quietly, exit 1, as rich's own output does
        try:  # and no second BrokenPipeError when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(json_argv=argv if "--json" in argv else None)
    args = parser.parse_args(argv)
    if args.version:
        return _run(Command("version", board.version, board.show_version), args)
    if not getattr(args, "command", None):
        parser.error("a COMMAND is required")
    return _run(args.command, args)


def _run(c: Command, args) -> int:
    state = State(args, c)
    try:
        assert c.run is not None
        result = c.run(state)
        if result is not DONE:
            state.emit(result)
        if c.then is not None:
            c.then(result, state)
        return state.exit_code
    except PumpctlError as e:
        if getattr(args, "json", False):
            print_envelope(command_name(args), error=e)
        else:
            print(f"pumpctl: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        stop = Interrupted("interrupted (Ctrl-C): a request already sent may have been done; check with pumpctl status")
        if getattr(args, "json", False):  # a script reading --json still reads one envelope
            print_envelope(command_name(args), error=stop)
        else:
            print(f"pumpctl: {stop}", file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
