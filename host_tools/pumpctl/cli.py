"""pumpctl command line: a thin layer over the library; every error is one line and a distinct exit code
(README: Exit codes), `--json` output in one envelope {"schema", "command", "ok", "result" | "error"}.

Subcommands come from command modules: each module in COMMAND_MODULES exposes register(sub, with_port)
and adds its parsers (set_defaults(func=handler)); with_port() gives a parser the common options."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from . import EXIT_ERROR, EXIT_NO_BOARD, NoBoardError, PumpctlError, RefusedError, __version__

# The command modules (host_tools/pumpctl/<name>.py), registered in this order after the core commands
# below. A new group of commands is a module with register(sub, with_port) and one name here.
COMMAND_MODULES = ["cli_therapy", "cli_clinic"]

JSON_SCHEMA = 1
DEFAULT_TIMEOUT_S = 3.0


def positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return v


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


def emit(a, result, text: str | None = None) -> None:
    """A command's report: the JSON envelope with --json, else text (if any)."""
    if getattr(a, "json", False):
        print(json.dumps({"schema": JSON_SCHEMA, "command": command_name(a), "ok": True, "result": result},
                         indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def command_name(a) -> str:
    return " ".join(str(x) for x in (getattr(a, "cmd", None), getattr(a, "vcmd", None),
                                     getattr(a, "tcmd", None)) if x)


def therapy_running(st: dict) -> bool:
    th = st.get("therapy")
    return th is not None and not th.get("suspended")


def cmd_status(a) -> int:
    from .client import Client
    from .link import Link

    port = resolve_port(a.port, a.device)
    with Link(port) as link:
        st = Client(link, timeout_s=a.timeout).request("status")
    if a.json:
        emit(a, st)
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"itpump on {port}", show_header=False)
    for key, label, fmt in (
        ("board", "board", str), ("fw", "firmware", str), ("uptime_ms", "uptime", _fmt_uptime),
        ("reset_cause", "reset cause", str), ("mem_free", "free heap", lambda v: f"{v:,} bytes"),
        ("mem_alloc", "used heap", lambda v: f"{v:,} bytes"),
    ):
        if key in st:
            t.add_row(label, fmt(st[key]))
    from .render import therapy_rows

    rows = therapy_rows(st)
    if rows:
        t.add_section()
        for label, value in rows:
            t.add_row(label, value)
    Console(highlight=False).print(t)
    return 0


def _fmt_uptime(ms: int) -> str:
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def cmd_ping(a) -> int:
    from .client import Client
    from .link import Link

    with Link(resolve_port(a.port, a.device)) as link:
        Client(link, timeout_s=a.timeout).request("ping")
    emit(a, {"pong": True}, "pong")
    return 0


def cmd_flash(a) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from . import flash as fl
    from .client import Client
    from .link import Link

    port = resolve_port(a.port, a.device)
    board = a.board
    if board is not None:
        fl.board_chip(board)  # an unknown board folder: refused before the port is opened
    # Check first, then act: a refused flash leaves a running firmware running.
    pr = fl.probe(port, timeout_s=min(a.timeout, 2.0))
    if pr.status is not None:
        if board is None:
            board = fl.board_from_status(pr.status)
        else:
            fl.check_status(board, pr.status)
        _service_before_flash(port, a, pr.status)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  transient=not sys.stderr.isatty(), disable=a.quiet or a.json) as prog:
        task = prog.add_task("flashing", total=None)

        def progress(name, done, total):
            prog.update(task, description=f"flashing {name}", completed=done, total=total)

        summary = fl.flash(port, board, mpy=a.mpy, restart=not a.no_restart, progress=progress)
    what = {"py": "", "mpy": " as .mpy", "frozen": " (the rest is frozen in the image)"}[summary["mode"]]
    msg = (f"flashed {summary['files']} files ({summary['bytes']:,} bytes){what} to {summary['board']} on {port} "
           f"in {summary['seconds']:.1f} s, verified by SHA-256")
    if summary["skipped"]:
        msg += f"; {summary['skipped']} unchanged"
    removed = summary["removed"]
    if removed:
        msg += f"; removed stale {', '.join(removed) if len(removed) <= 3 else f'{len(removed)} files'}"
    if not a.json:
        print(msg)
    if summary["shadowed"]:
        print(f"note: the board's frozen image holds other versions of {len(summary['shadowed'])} files; the "
              f"firmware was copied over it (rebuild the image: make firmware BOARD={summary['board']})",
              file=sys.stderr)
    if not a.no_restart:
        with Link(port) as link:
            st = Client(link).wait_ready(a.timeout + summary["boot_budget_s"])
        summary["status"] = st
        if not a.json:
            print(f"restarted: itpump {st['fw']} on board '{st['board']}' answers")
    emit(a, summary)
    return 0


def _service_before_flash(port: str, a, st: dict, what: str = "flash", does: str = "flashes") -> None:
    """A pump delivering therapy keeps its REPL locked: flashing or restarting needs the service op
    first (signed with the service key), which stops the motor safely, abandons a bolus and opens the
    REPL. Refused at once without --service, so a running pump is never interrupted by accident.
    st: its status."""
    from .client import Client
    from .link import Link
    from .session import Session

    if not therapy_running(st):
        return
    if not a.service:
        raise RefusedError(f"therapy is running on {port} (its REPL is locked): pumpctl {what} --service "
                           f"suspends delivery safely with the service key first, then {does}")
    with Link(port) as link:
        r = Session(Client(link, timeout_s=a.timeout)).change("service", None)
    if not a.quiet and not a.json:
        print(f"service mode: delivery suspended (bolus abandoned: {r.get('bolus_abandoned_nl', 0)} nL), "
              f"REPL {r.get('repl', '?')}; therapy resumes after the restart")


def cmd_restart(a) -> int:
    from . import flash as fl
    from .client import Client
    from .link import Link

    port = resolve_port(a.port, a.device)
    pr = fl.probe(port, timeout_s=min(a.timeout, 2.0))
    if pr.status is not None:  # check first, then act: a refused restart leaves the pump running
        _service_before_flash(port, a, pr.status, "restart", "restarts")
    budget_s = fl.restart(port)
    with Link(port) as link:
        st = Client(link).wait_ready(a.timeout + budget_s)
    emit(a, st, f"restarted: itpump {st['fw']} on board '{st['board']}' answers")
    return 0


# The boards pumpctl runs itself: the virtual board and the emulated Pico start, stop and report alike.
# module: pumpctl.<module> with start(dir, speed=, **options) -> port, stop(dir) -> bool, status(dir) -> dict
TARGETS = {
    "vboard": {"module": "vboard", "noun": "virtual board", "dir": "$ITPUMP_VBOARD_DIR or .vboard/default",
               "start": "start it and print its serial port", "stop": "stop it", "size": ("heap", "heap {}")},
    "epico": {"module": "epico", "noun": "emulated Pico", "dir": "$ITPUMP_EPICO_DIR or .epico/default",
              "start": "power it on and print its serial port", "stop": "power it off",
              "size": ("flash_bytes", "flash {:,} bytes")},
}


def cmd_target(a) -> int:
    """`pumpctl vboard|epico start|stop|status`."""
    t = TARGETS[a.cmd]
    mod = importlib.import_module(f".{t['module']}", __package__)
    if a.vcmd == "start":
        opts = {"heap": a.heap} if a.cmd == "vboard" else {"firmware": a.firmware, "bootrom": a.bootrom,
                                                           "erase": a.erase}
        port = mod.start(a.dir, speed=a.speed, **opts)
        emit(a, {"port": port}, port)
    elif a.vcmd == "stop":
        if not mod.stop(a.dir):
            raise NoBoardError(f"no {t['noun']} running")
        emit(a, {"stopped": True})
    elif a.vcmd == "status":
        st = mod.status(a.dir)
        key, said = t["size"]
        if a.json:
            emit(a, st)
        elif st["running"]:
            print(f"running on {st['port']} (pid {st['pid']}, speed {st['speed']}x, {said.format(st[key])}, "
                  f"state in {st['dir']})")
        else:
            print(f"not running (state in {st['dir']})")
        if not st["running"]:
            return EXIT_NO_BOARD
    return 0


def _target_parser(sub, name: str, help_: str) -> None:
    t = TARGETS[name]
    sp = sub.add_parser(name, help=help_)
    vsub = sp.add_subparsers(dest="vcmd", required=True, metavar="ACTION")
    for action, hlp in (("start", t["start"]), ("stop", t["stop"]), ("status", "is it running, on which port")):
        v = vsub.add_parser(action, help=hlp)
        v.add_argument("--dir", help=f"state directory (flash image, port); default {t['dir']}")
        if action == "start" and name == "vboard":
            v.add_argument("--speed", type=float, default=1.0, help="virtual clock speed factor (e.g. 3600)")
            v.add_argument("--heap", default="256K", help="MicroPython heap size (default 256K)")
        elif action == "start":
            v.add_argument("--firmware", help="MicroPython image (.uf2 or .bin) to write first, as a BOOTSEL drop "
                                              "does (the filesystem stays); needed on first start")
            v.add_argument("--bootrom", help="RP2040 bootrom (default $ITPUMP_BOOTROM, else "
                                             "shared/rp2/bootrom-rp2040-b1.bin beside the repository)")
            v.add_argument("--erase", action="store_true", help="start from blank flash")
            v.add_argument("--speed", type=float, default=1.0, help="chip time per wall time, at most "
                                                                    "(default 1: real time)")
        _json_flag(v)
    sp.set_defaults(func=cmd_target)


def cmd_ports(a) -> int:
    from .link import list_boards

    boards = list_boards()
    for b in boards:
        if a.probe:
            st = probe(b["port"], a.timeout)
            b["device_id"] = st.get("device_id")
            b["fw"] = st.get("fw")
            if "error" in st:
                b["error"] = st["error"]
    if a.json:
        emit(a, boards)
        return 0
    if not boards:
        print("no MicroPython boards attached (USB 2E8A:0005)", file=sys.stderr)
    for b in boards:
        line = f"{b['port']}  serial {b['serial'] or '-'}  {b['product'] or '-'}"
        if a.probe:
            line += f"  device {b['device_id']} (itpump {b['fw']})" if b.get("device_id") else \
                f"  ({b.get('error', 'not itpump')})"
        print(line)
    return 0


def cmd_version(a) -> int:
    """--version: pumpctl's, and the firmware's when a board answers."""
    port = None
    try:
        port = resolve_port(a.port, a.device)
    except PumpctlError:
        pass
    fw = probe(port, min(a.timeout, 2.0)) if port else {"error": "no board"}
    if a.json:
        emit(a, {"pumpctl": __version__, "port": port, "firmware": fw.get("fw"), "board": fw.get("board")})
    else:
        print(f"pumpctl {__version__}")
        print(f"firmware: itpump {fw['fw']} on {port} ({fw.get('board')})" if fw.get("fw") else
              f"firmware: unknown ({fw.get('error', 'not itpump')})")
    return 0


class _Parser(argparse.ArgumentParser):
    """Subcommand parsers: an option a command module adds again (say its own --json) replaces the
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
    try:
        import shtab

        shtab.add_argument_to(p, ["--print-completion"], help="print a shell completion script (bash, zsh, "
                                                             "tcsh) and exit")
    except ImportError:  # completion is a convenience: pumpctl works without it
        pass
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)

    def with_port(sp):
        _common(sp, argparse_default=False)
        return sp

    sp = with_port(sub.add_parser("status", help="show the board's status"))
    sp.set_defaults(func=cmd_status)

    sp = with_port(sub.add_parser("ping", help="check that itpump answers"))
    sp.set_defaults(func=cmd_ping)

    sp = with_port(sub.add_parser("flash", help="copy firmware + board files, verify, restart"))
    sp.add_argument("--board", help="a folder under boards/: sim, rpi_pico, rpi_pico2, or your own copy "
                                    "(boards/README.md); default: the board says what it is")
    kind = sp.add_mutually_exclusive_group()
    kind.add_argument("--mpy", action="store_true", default=None, help="compile modules with mpy-cross first "
                      "(the default on rp2 boards without itpump frozen in)")
    kind.add_argument("--py", dest="mpy", action="store_false", default=None, help="copy the .py sources")
    sp.add_argument("--no-restart", action="store_true", help="leave the board at the REPL")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--service", action="store_true", help="if therapy runs, enter service mode first "
                                                           "(signed with the service key)")
    sp.set_defaults(func=cmd_flash)

    sp = with_port(sub.add_parser("restart", help="restart the firmware (e.g. after mpremote left it at "
                                                 "the REPL)"))
    sp.add_argument("--service", action="store_true", help="if therapy runs, enter service mode first "
                                                           "(signed with the service key)")
    sp.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_restart)

    _target_parser(sub, "vboard", "the virtual board (real MicroPython + simulated pump)")

    sp = sub.add_parser("ports", help="list attached MicroPython boards (USB 2E8A:0005): port, serial, product")
    sp.add_argument("--probe", action="store_true", help="also ask each for its itpump device id")
    sp.add_argument("--timeout", type=positive_seconds, default=argparse.SUPPRESS,
                    help="reply timeout of --probe in seconds")
    _json_flag(sp)
    sp.set_defaults(func=cmd_ports)

    for name in COMMAND_MODULES:
        mod = importlib.import_module(f".{name}", __package__)
        if hasattr(mod, "register"):
            mod.register(sub, with_port)
        elif hasattr(mod, "add_commands"):  # the names modules used before the hook
            mod.add_commands(sub, with_port)
        else:
            mod.add_parsers(sub)
    _target_parser(sub, "epico", "the emulated Pico (official rp2 MicroPython on rp2040js, needs node)")
    return p


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
    _json_flag(sp, d(False))


def _json_flag(sp, default=argparse.SUPPRESS) -> None:
    sp.add_argument("--json", action="store_true", default=default,
                    help=f"machine-readable output: {{schema: {JSON_SCHEMA}, command, ok, result | error}}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return _run(cmd_version, args)
    if not getattr(args, "func", None):
        parser.error("a COMMAND is required (pumpctl -h lists them)")
    return _run(args.func, args)


def _run(func, args) -> int:
    try:
        return func(args)
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
