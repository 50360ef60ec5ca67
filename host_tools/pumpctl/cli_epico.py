"""`pumpctl epico start/stop/status`: the emulated Pico (pumpctl.epico, docs/epico.md)."""

from __future__ import annotations

import json
import sys

EXIT_ERROR = 1


def cmd_epico(a) -> int:
    from . import epico

    if a.ecmd == "start":
        print(epico.start(a.dir, firmware=a.firmware, bootrom=a.bootrom, speed=a.speed, erase=a.erase))
    elif a.ecmd == "stop":
        if not epico.stop(a.dir):
            print("no emulated Pico running", file=sys.stderr)
            return EXIT_ERROR
    elif a.ecmd == "status":
        st = epico.status(a.dir)
        if a.json:
            print(json.dumps(st, indent=2))
        elif st["running"]:
            print(f"running on {st['port']} (pid {st['pid']}, speed {st['speed']}x, flash {st['flash_bytes']:,} "
                  f"bytes, state in {st['dir']})")
        else:
            print(f"not running (state in {st['dir']})")
            return EXIT_ERROR
    return 0


def add_parsers(sub) -> None:
    sp = sub.add_parser("epico", help="the emulated Pico (official rp2 MicroPython on rp2040js, needs node)")
    esub = sp.add_subparsers(dest="ecmd", required=True, metavar="ACTION")
    for name, hlp in (("start", "power it on and print its serial port"), ("stop", "power it off"),
                      ("status", "is it running, on which port")):
        e = esub.add_parser(name, help=hlp)
        e.add_argument("--dir", help="state directory (flash image, port); default $ITPUMP_EPICO_DIR or "
                                     ".epico/default")
        if name == "start":
            e.add_argument("--firmware", help="MicroPython image (.uf2 or .bin) to write first, as a BOOTSEL "
                                              "drop does (the filesystem stays); needed on first start")
            e.add_argument("--bootrom", help="RP2040 bootrom (default $ITPUMP_BOOTROM, else "
                                             "shared/rp2/bootrom-rp2040-b1.bin beside the repository)")
            e.add_argument("--erase", action="store_true", help="start from blank flash")
            e.add_argument("--speed", type=float, default=1.0, help="chip time per wall time, at most "
                                                                    "(default 1: real time)")
        if name == "status":
            e.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_epico)
