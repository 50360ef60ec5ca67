"""pumpctl command line: a thin layer over the library; every error is one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import PumpctlError, __version__

EXIT_ERROR = 1


def resolve_port(port: str | None) -> str:
    """--port, else $ITPUMP_PORT, else the running default virtual board, else one attached Pico."""
    if port:
        return port
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
        raise PumpctlError("no port given and no board found (no USB device 2E8A, no virtual board "
                           "running): use --port PORT or `pumpctl vboard start`")
    raise PumpctlError(f"several boards attached ({', '.join(found)}): choose one with --port")


def cmd_status(a) -> int:
    from .client import Client
    from .link import Link

    port = resolve_port(a.port)
    with Link(port) as link:
        st = Client(link, timeout_s=a.timeout).request("status")
    if a.json:
        print(json.dumps(st, indent=2, sort_keys=True))
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
    from .session import therapy_rows

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

    with Link(resolve_port(a.port)) as link:
        Client(link, timeout_s=a.timeout).request("ping")
    print("pong")
    return 0


def cmd_flash(a) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from . import flash as fl
    from .client import Client
    from .link import Link

    port = resolve_port(a.port)
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
                  transient=not sys.stderr.isatty(), disable=a.quiet) as prog:
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
    print(msg)
    if summary["shadowed"]:
        print(f"note: the board's frozen image holds other versions of {len(summary['shadowed'])} files; the "
              f"firmware was copied over it (rebuild the image: make firmware BOARD={summary['board']})",
              file=sys.stderr)
    if not a.no_restart:
        with Link(port) as link:
            st = Client(link).wait_ready(a.timeout + summary["boot_budget_s"])
        print(f"restarted: itpump {st['fw']} on board '{st['board']}' answers")
    return 0


def _service_before_flash(port: str, a, st: dict) -> None:
    """A pump delivering therapy keeps its REPL locked: flashing needs the service op first (signed
    with the service key), which stops the motor safely, abandons a bolus and opens the REPL. Refused
    without --service, so a running pump is never interrupted by accident. st: its status."""
    from .client import Client
    from .link import Link
    from .session import Session

    th = st.get("therapy")
    if th is None or th.get("suspended"):
        return
    if not a.service:
        raise PumpctlError(f"therapy is running on {port} (its REPL is locked): pumpctl flash --service "
                           "suspends delivery safely with the service key first, then flashes")
    with Link(port) as link:
        r = Session(Client(link, timeout_s=a.timeout)).change("service", None)
    if not a.quiet:
        print(f"service mode: delivery suspended (bolus abandoned: {r.get('bolus_abandoned_nl', 0)} nL), "
              f"REPL {r.get('repl', '?')}; therapy resumes after the restart")


def cmd_restart(a) -> int:
    from .client import Client
    from .flash import restart
    from .link import Link

    port = resolve_port(a.port)
    budget_s = restart(port)
    with Link(port) as link:
        st = Client(link).wait_ready(a.timeout + budget_s)
    print(f"restarted: itpump {st['fw']} on board '{st['board']}' answers")
    return 0


def cmd_vboard(a) -> int:
    from . import vboard

    if a.vcmd == "start":
        port = vboard.start(a.dir, speed=a.speed, heap=a.heap)
        print(port)
    elif a.vcmd == "stop":
        if not vboard.stop(a.dir):
            print("no virtual board running", file=sys.stderr)
            return EXIT_ERROR
    elif a.vcmd == "status":
        st = vboard.status(a.dir)
        if a.json:
            print(json.dumps(st, indent=2))
        elif st["running"]:
            print(f"running on {st['port']} (pid {st['pid']}, speed {st['speed']}x, heap {st['heap']}, "
                  f"state in {st['dir']})")
        else:
            print(f"not running (state in {st['dir']})")
            return EXIT_ERROR
    return 0


def cmd_ports(a) -> int:
    from .link import find_ports

    for p in find_ports():
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pumpctl", description="Host tools for the itpump pump firmware.")
    p.add_argument("--version", action="version", version=f"pumpctl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def with_port(sp):
        sp.add_argument("--port", help="serial port (default: $ITPUMP_PORT, the running virtual board, "
                                       "or the one attached Pico)")
        sp.add_argument("--timeout", type=float, default=3.0, help="reply timeout in seconds (default 3)")
        return sp

    sp = with_port(sub.add_parser("status", help="show the board's status"))
    sp.add_argument("--json", action="store_true", help="machine-readable output")
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
    sp.set_defaults(func=cmd_restart)

    sp = sub.add_parser("vboard", help="the virtual board (real MicroPython + simulated pump)")
    vsub = sp.add_subparsers(dest="vcmd", required=True, metavar="ACTION")
    for name, hlp in (("start", "start it and print its serial port"), ("stop", "stop it"),
                      ("status", "is it running, on which port")):
        v = vsub.add_parser(name, help=hlp)
        v.add_argument("--dir", help="state directory (flash image, port); default $ITPUMP_VBOARD_DIR "
                                     "or .vboard/default")
        if name == "start":
            v.add_argument("--speed", type=float, default=1.0, help="virtual clock speed factor (e.g. 3600)")
            v.add_argument("--heap", default="256K", help="MicroPython heap size (default 256K)")
        if name == "status":
            v.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_vboard)

    sp = sub.add_parser("ports", help="list attached Raspberry Pi boards (USB 2E8A)")
    sp.set_defaults(func=cmd_ports)

    from .cli_therapy import add_commands

    add_commands(sub, with_port)
    from .cli_clinic import add_commands as add_clinic_commands

    add_clinic_commands(sub, with_port)
    from .cli_epico import add_parsers as add_epico_parsers

    add_epico_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PumpctlError as e:
        print(f"pumpctl: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pumpctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
