"""pumpctl command line: one table of commands (COMMANDS), each a handler that does the work and returns
its result, its own arguments, and how a person sees the result (render.py). The driver here parses,
runs, and prints the result as text or, with --json, in one envelope {"schema", "command", "ok",
"result" | "error"}; every error is one line and a distinct exit code (README: Exit codes)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import EXIT_ERROR, NoBoardError, PumpctlError
from .commands import DONE, board, clinic, logs, therapy

JSON_SCHEMA = 1
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Command:
    """One command: run(state) does the work and returns the result (printed by --json); show(result,
    state) writes what a person reads; args(parser) adds the command's own arguments; board: it talks
    to a board (takes --port, --device, --timeout); envelope: --json wraps the result (drugs and history
    print theirs bare, as they did before the envelope); actions: sub-commands (vboard start ...)."""

    help: str
    run: Callable[[State], Any] | None = None
    show: Callable[[Any, State], None] | None = None
    args: Callable[[argparse.ArgumentParser], None] | None = None
    board: bool = True
    envelope: bool = True
    json_help: str | None = None  # --json's help, when it says more than the common one
    actions: dict[str, Command] = field(default_factory=dict)


class State:
    """What a handler runs with: the parsed arguments, the board's port (found on first use) and a
    session over the link; exit_code for a command that reports and still fails (log problems)."""

    def __init__(self, args: argparse.Namespace, command: Command):
        self.args = args
        self.command = command
        self.exit_code = 0
        self.notes: dict[str, Any] = {}  # what a show_* needs beyond the result (not part of --json)
        self._port: str | None = None

    @property
    def port(self) -> str:
        if self._port is None:
            self._port = resolve_port(self.args.port, getattr(self.args, "device", None))
        return self._port

    def emit(self, result: Any) -> None:
        """The command's report: the JSON envelope with --json, else its text."""
        if getattr(self.args, "json", False):
            if self.command.envelope:
                print(json.dumps({"schema": JSON_SCHEMA, "command": command_name(self.args), "ok": True,
                                  "result": result}, indent=2, sort_keys=True, default=str))
            else:
                print(json.dumps(result, indent=2))
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
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return v


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
    "logs": Command("read the event log over the link", logs.logs, None, logs.logs_args),
    "report": Command("a one-page therapy report (HTML, PDF or PNG by --out's suffix)", clinic.report, None,
                      clinic.report_args),
    "web": Command("the local web programmer on 127.0.0.1 (prints one-time links; owns the link while it runs)",
                   clinic.web, None, clinic.web_args),
    "drugs": Command("the drug library: concentrations and daily doses the pump accepts", clinic.drugs,
                     clinic.show_drugs, board=False, envelope=False,
                     json_help="machine-readable (the pump's integer units)"),
    "history": Command("prescriptions sent from this computer (who, when, what)", clinic.history,
                       clinic.show_history, clinic.history_args, board=False, envelope=False),
    "epico": Command("the emulated Pico (official rp2 MicroPython on rp2040js, needs node)",
                     actions=board.target_actions("epico")),
}
ACTION_DEST = {"vboard": "vcmd", "time": "tcmd", "epico": "ecmd"}  # where argparse puts a group's action


# -- resolving the board ---------------------------------------------------------------------------


def resolve_port(port: str | None, device: str | None = None) -> str:
    """--port, else $ITPUMP_PORT, else the running default virtual board, else one attached Pico
    (USB 2E8A:0005, MicroPython); with --device, the board (virtual or attached) whose id it is."""
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
    """Subcommand parsers: an option a command adds again (say drugs' own --json help) replaces the
    common one instead of failing to build the parser."""

    def __init__(self, *args, **kw):
        kw.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pumpctl", description="Host tools for the itpump pump firmware.",
                                epilog="exit codes: 0 ok, 1 error, 2 usage, 3 no board, 4 refused, "
                                       "5 timeout, 6 link error")
    p.add_argument("--version", action="store_true", help="show pumpctl's version and the firmware's")
    _common(p, argparse_default=True)
    with contextlib.suppress(ImportError):  # completion is a convenience: pumpctl works without it
        import shtab

        shtab.add_argument_to(p, ["--print-completion"], help="print a shell completion script (bash, zsh, "
                                                             "tcsh) and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    for name, c in COMMANDS.items():
        sp = sub.add_parser(name, help=c.help)
        if c.actions:
            asub = sp.add_subparsers(dest=ACTION_DEST[name], required=True, metavar="ACTION")
            for action, ac in c.actions.items():
                _add(asub.add_parser(action, help=ac.help), ac)
        else:
            _add(sp, c)
    return p


def _add(sp: argparse.ArgumentParser, c: Command) -> None:
    if c.board:
        _common(sp, argparse_default=False)
    if c.args:
        c.args(sp)
    if not c.board:
        _json_flag(sp, envelope=c.envelope, text=c.json_help)
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


def _json_flag(sp, default=argparse.SUPPRESS, envelope: bool = True, text: str | None = None) -> None:
    sp.add_argument("--json", action="store_true", default=default, help=text or (
        f"machine-readable output: {{schema: {JSON_SCHEMA}, command, ok, result | error}}" if envelope
        else "machine-readable output (the result alone, no envelope)"))


# -- running a command ------------------------------------------------------------------------------


def command_name(a) -> str:
    return " ".join(str(x) for x in (getattr(a, "cmd", None), *(getattr(a, d, None) for d in ACTION_DEST.values()))
                    if x)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return _run(Command("version", board.version, board.show_version), args)
    if not getattr(args, "command", None):
        parser.error("a COMMAND is required (pumpctl -h lists them)")
    return _run(args.command, args)


def _run(c: Command, args) -> int:
    state = State(args, c)
    try:
        assert c.run is not None
        result = c.run(state)
        if result is not DONE:
            state.emit(result)
        return state.exit_code
    except PumpctlError as e:
        code = getattr(e, "exit_code", EXIT_ERROR)
        if getattr(args, "json", False):
            err = {"type": type(e).__name__, "message": str(e), "exit_code": code}
            if getattr(e, "code", None):
                err["code"] = e.code
            print(json.dumps({"schema": JSON_SCHEMA, "command": command_name(args), "ok": False,
                              "error": err}, indent=2, sort_keys=True))
        else:
            print(f"pumpctl: error: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("pumpctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
