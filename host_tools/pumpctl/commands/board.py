"""Board commands: status, ping, flash, restart, ports, --version, and the boards pumpctl runs itself
(vboard: the virtual board; epico: the emulated Pico), which start, stop and report alike."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from .. import NoBoardError, PumpctlError, RefusedError, __version__


def status(s) -> dict:
    from ..client import Client
    from ..link import Link

    with Link(s.port) as link:
        return Client(link, timeout_s=s.args.timeout).request("status")


def show_status(st: dict, s) -> None:
    from rich.console import Console

    from .. import render

    Console(highlight=False).print(render.status_table(st, s.port))


def ping(s) -> dict:
    from ..client import Client
    from ..link import Link

    with Link(s.port) as link:
        Client(link, timeout_s=s.args.timeout).request("ping")
    return {"pong": True}


def show_ping(_r: dict, _s) -> None:
    print("pong")


def therapy_running(st: dict) -> bool:
    th = st.get("therapy")
    return th is not None and not th.get("suspended")


def flash_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--board", help="a folder under boards/: sim, rpi_pico, rpi_pico2, or your own copy "
                                    "(boards/README.md); default: the board says what it is")
    kind = sp.add_mutually_exclusive_group()
    kind.add_argument("--mpy", action="store_true", default=None, help="compile modules with mpy-cross first "
                      "(the default on rp2 boards without itpump frozen in)")
    kind.add_argument("--py", dest="mpy", action="store_false", default=None, help="copy the .py sources")
    sp.add_argument("--no-restart", action="store_true", help="leave the board at the REPL")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    _service_flag(sp)


def _service_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--service", action="store_true", help="if therapy runs, enter service mode first "
                                                           "(signed with the service key)")


def flash(s) -> dict:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from .. import flash as fl
    from ..client import Client
    from ..link import Link

    a = s.args
    board = a.board
    if board is not None:
        fl.board_chip(board)  # an unknown board folder: refused before a port is looked for or opened
    port = s.port
    # Check first, then act: a refused flash leaves a running firmware running.
    pr = fl.probe(port, timeout_s=min(a.timeout, 2.0))
    if pr.status is not None:
        if board is None:
            board = fl.board_from_status(pr.status)
        else:
            fl.check_status(board, pr.status)
        _service_first(s, pr.status)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  transient=not sys.stderr.isatty(), disable=a.quiet or a.json) as prog:
        task = prog.add_task("flashing", total=None)

        def progress(name, done, total):
            prog.update(task, description=f"flashing {name}", completed=done, total=total)

        summary = fl.flash(port, board, mpy=a.mpy, restart=not a.no_restart, progress=progress)
    if summary["shadowed"]:
        print(f"note: the board's frozen image holds other versions of {len(summary['shadowed'])} files; the "
              f"firmware was copied over it (rebuild the image: make firmware BOARD={summary['board']})",
              file=sys.stderr)
    if not a.no_restart:
        with Link(port) as link:
            summary["status"] = Client(link).wait_ready(a.timeout + summary["boot_budget_s"])
    return summary


def show_flash(summary: dict, s) -> None:
    from .. import render

    print(render.flash_text(summary, s.port))
    if "status" in summary:
        show_restarted(summary["status"], s)


def _service_first(s, st: dict, what: str = "flash", does: str = "flashes") -> None:
    """A pump delivering therapy keeps its REPL locked: flashing or restarting needs the service op
    first (signed with the service key), which stops the motor safely, abandons a bolus and opens the
    REPL. Refused at once without --service, so a running pump is never interrupted by accident.
    st: its status."""
    if not therapy_running(st):
        return
    a = s.args
    if not a.service:
        raise RefusedError(f"therapy is running on {s.port} (its REPL is locked): pumpctl {what} --service "
                           f"suspends delivery safely with the service key first, then {does}")
    with s.session() as ses:
        r = ses.change("service", None)
    if not getattr(a, "quiet", False) and not a.json:
        print(f"service mode: delivery suspended (bolus abandoned: {r.get('bolus_abandoned_nl', 0)} nL), "
              f"REPL {r.get('repl', '?')}; therapy resumes after the restart")


def restart_args(sp: argparse.ArgumentParser) -> None:
    _service_flag(sp)
    sp.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)


def restart(s) -> dict:
    from .. import flash as fl
    from ..client import Client
    from ..link import Link

    pr = fl.probe(s.port, timeout_s=min(s.args.timeout, 2.0))
    if pr.status is not None:  # check first, then act: a refused restart leaves the pump running
        _service_first(s, pr.status, "restart", "restarts")
    budget_s = fl.restart(s.port)
    with Link(s.port) as link:
        return Client(link).wait_ready(s.args.timeout + budget_s)


def show_restarted(st: dict, _s) -> None:
    print(f"restarted: itpump {st['fw']} on board '{st['board']}' answers")


def ports_args(sp: argparse.ArgumentParser) -> None:
    from ..cli import positive_seconds

    sp.add_argument("--probe", action="store_true", help="also ask each for its itpump device id")
    sp.add_argument("--timeout", type=positive_seconds, default=argparse.SUPPRESS,
                    help="reply timeout of --probe in seconds")


def ports(s) -> list[dict]:
    from .. import cli
    from ..link import list_boards

    boards = list_boards()
    for b in boards:
        if s.args.probe:
            st = cli.probe(b["port"], s.args.timeout)
            b["device_id"] = st.get("device_id")
            b["fw"] = st.get("fw")
            if "error" in st:
                b["error"] = st["error"]
    return boards


def show_ports(boards: list[dict], s) -> None:
    if not boards:
        print("no MicroPython boards attached (USB 2E8A:0005)", file=sys.stderr)
    for b in boards:
        line = f"{b['port']}  serial {b['serial'] or '-'}  {b['product'] or '-'}"
        if s.args.probe:
            line += f"  device {b['device_id']} (itpump {b['fw']})" if b.get("device_id") else \
                f"  ({b.get('error', 'not itpump')})"
        print(line)


def version(s) -> dict:
    """--version: pumpctl's, and the firmware's when a board answers."""
    from .. import cli

    port = None
    try:
        port = s.port
    except PumpctlError:
        pass
    fw = cli.probe(port, min(s.args.timeout, 2.0)) if port else {"error": "no board"}
    s.notes["why_unknown"] = fw.get("error", "not itpump")
    return {"pumpctl": __version__, "port": port, "firmware": fw.get("fw"), "board": fw.get("board")}


def show_version(v: dict, s) -> None:
    print(f"pumpctl {v['pumpctl']}")
    print(f"firmware: itpump {v['firmware']} on {v['port']} ({v['board']})" if v["firmware"] else
          f"firmware: unknown ({s.notes['why_unknown']})")


# -- boards pumpctl runs: the virtual board and the emulated Pico -----------------------------------


@dataclass(frozen=True)
class Target:
    module: str  # pumpctl.<module>: start(dir, **options) -> port, stop(dir) -> bool, status(dir) -> dict
    noun: str
    dir_env: str
    start_help: str
    stop_help: str
    size: tuple[str, str]  # status key and how it is said ("heap {}", "flash {:,} bytes")


TARGETS = {
    "vboard": Target("vboard", "virtual board", "$ITPUMP_VBOARD_DIR or .vboard/default",
                     "start it and print its serial port", "stop it", ("heap", "heap {}")),
    "epico": Target("epico", "emulated Pico", "$ITPUMP_EPICO_DIR or .epico/default",
                    "power it on and print its serial port", "power it off", ("flash_bytes", "flash {:,} bytes")),
}


def target_actions(name: str) -> dict:
    """The start/stop/status commands of a target, for cli.COMMANDS."""
    from ..cli import Command

    t = TARGETS[name]

    def dir_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dir", help=f"state directory (flash image, port); default {t.dir_env}")

    def start_args(sp: argparse.ArgumentParser) -> None:
        dir_arg(sp)
        (_vboard_start_args if name == "vboard" else _epico_start_args)(sp)

    return {"start": Command(t.start_help, target_start, show_port, start_args, board=False),
            "stop": Command(t.stop_help, target_stop, show_stopped, dir_arg, board=False),
            "status": Command("is it running, on which port", target_status, show_target_status, dir_arg,
                              board=False)}


def _vboard_start_args(sp: argparse.ArgumentParser) -> None:
    from .. import vboard
    from ..cli import positive_number

    sp.add_argument("--speed", type=positive_number, default=1.0, help="virtual clock speed factor (e.g. 3600)")
    sp.add_argument("--heap", type=_heap_size, default=vboard.DEFAULT_HEAP,
                    help=f"MicroPython heap size (default {vboard.DEFAULT_HEAP}: a Pico's, in 64-bit objects)")


def _heap_size(text: str) -> str:
    """--heap as micropython's -X heapsize takes it: a number of bytes, K or M (384K)."""
    import re

    if not re.fullmatch(r"[1-9][0-9]*[KkMm]?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a heap size (bytes, or with K or M: 384K)")
    return text


def _epico_start_args(sp: argparse.ArgumentParser) -> None:
    from ..cli import positive_number

    sp.add_argument("--firmware", help="MicroPython image (.uf2 or .bin) to write first, as a BOOTSEL drop does "
                                       "(the filesystem stays); needed on first start")
    sp.add_argument("--bootrom", help="RP2040 bootrom (default $ITPUMP_BOOTROM, else "
                                      "shared/rp2/bootrom-rp2040-b1.bin beside the repository)")
    sp.add_argument("--erase", action="store_true", help="start from blank flash")
    sp.add_argument("--speed", type=positive_number, default=1.0,
                    help="chip time per wall time, at most (default 1: real time)")


def _target(s) -> tuple[Target, Any]:
    import importlib

    t = TARGETS[s.args.cmd]
    return t, importlib.import_module(f"..{t.module}", __package__)


def target_start(s) -> dict:
    t, mod = _target(s)
    a = s.args
    opts = {"heap": a.heap} if t.module == "vboard" else {"firmware": a.firmware, "bootrom": a.bootrom,
                                                          "erase": a.erase}
    return {"port": mod.start(a.dir, speed=a.speed, **opts)}


def show_port(r: dict, _s) -> None:
    print(r["port"])


def target_stop(s) -> dict:
    t, mod = _target(s)
    if not mod.stop(s.args.dir):
        raise NoBoardError(f"no {t.noun} running")
    return {"stopped": True}


def show_stopped(_r: dict, s) -> None:
    t, _mod = _target(s)
    print(f"{t.noun} stopped")


def target_status(s) -> dict:
    t, mod = _target(s)
    st = mod.status(s.args.dir)
    if not st["running"]:
        s.fail(NoBoardError(f"no {t.noun} running"))
    return st


def show_target_status(st: dict, s) -> None:
    t, _mod = _target(s)
    if st["running"]:
        key, said = t.size
        print(f"running on {st['port']} (pid {st['pid']}, speed {st['speed']}x, {said.format(st[key])}, "
              f"state in {st['dir']})")
    else:
        print(f"not running (state in {st['dir']})")
