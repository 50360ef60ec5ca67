"""`pumpctl logs`: the event log over the link (session.read_logs), exported as a table, CSV or JSON
(logs.py) by show_logs, plotted, then followed as it grows (follow_logs, after the report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import PumpctlError, UsageError


def logs_args(sp: argparse.ArgumentParser) -> None:
    from ..cli import positive_seconds, whole_number
    from ..session import MAX_LOG_RECORDS

    sp.add_argument("--since", type=whole_number(0), default=0, metavar="N",
                    help="only records after this sequence number")
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table",
                    help="how the records are written (default table)")
    sp.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    sp.add_argument("--plot", metavar="PNG", help="also plot delivery (programmed vs delivered), rate and reservoir "
                                                  "over dates, with alarms, boluses, refills and drug changes marked")
    sp.add_argument("--follow", action="store_true", help="then print events as they happen until Ctrl-C")
    sp.add_argument("--interval", type=positive_seconds, default=1.0,
                    help="--follow: seconds between log checks (default 1)")
    sp.add_argument("--page", type=whole_number(1, MAX_LOG_RECORDS), default=MAX_LOG_RECORDS, metavar="N",
                    help=f"records per request (1..{MAX_LOG_RECORDS})")


def check_out_path(path: str | None, option: str) -> None:
    """An output file's folder must exist and the file must not be a folder: said before the board is
    asked, not after the whole log was read."""
    if path is None:
        return
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise PumpctlError(f"{option} {path}: folder {p.parent} does not exist")
    if p.is_dir():
        raise PumpctlError(f"{option} {path}: is a folder, give a file name")


def logs(s) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import history, render
    from .. import logs as logsmod
    from ..session import read_logs

    a = s.args
    if a.json and a.follow:
        raise UsageError("logs --json is one report of what was read: --follow streams, use it without --json")
    check_out_path(a.out, "--out")
    if a.plot:
        check_out_path(a.plot, "--plot")
        logsmod.check_plot_path(a.plot)  # fail before reading, not after
    err = Console(stderr=True, highlight=False)
    with s.session() as ses, Progress(TextColumn("reading log"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=err, transient=True,
                                      disable=not sys.stderr.isatty()) as prog:
        task = prog.add_task("logs", total=None)
        got = read_logs(ses.client, since=a.since, page=a.page,
                        progress=lambda done, total: prog.update(task, completed=done, total=total))
        device_id = ses.status().get("device_id") if a.plot else None
    if a.out:
        try:
            Path(a.out).write_text(logsmod.export(got.records, a.format))
        except OSError as e:
            raise PumpctlError(f"cannot write {a.out}: {e.strerror}") from None
    if a.plot and got.records:
        logsmod.plot(got.records, a.plot, drugs_by_rx=history.drugs_by_rx(device_id), tz=_local_tz())
    if got.problems:
        s.fail(PumpctlError(f"{len(got.problems)} log problem(s): what could be read was kept"))
    r = {"records": got.records, "pages": got.pages, "bytes": got.bytes, "problems": got.problems}
    s.notes["seconds"] = got.seconds
    if a.json:  # the envelope holds the problems and the error; the read line is progress, on stderr
        print(render.log_read_text(r, got.seconds, a.out, a.plot), file=sys.stderr)
    return r


def show_logs(r: dict, s) -> None:
    """The records (unless --out took them) on stdout; what was read, the problems and the error on
    stderr."""
    from .. import logs as logsmod
    from .. import render

    a = s.args
    if not a.out:
        sys.stdout.write(logsmod.export(r["records"], a.format))
    print(render.log_read_text(r, s.notes["seconds"], a.out, a.plot), file=sys.stderr)
    for p in r["problems"]:
        print(f"pumpctl: log problem: {p}", file=sys.stderr)
    if s.failure is not None:
        print(f"pumpctl: error: {s.failure}", file=sys.stderr)


def follow_logs(r: dict, s) -> None:
    """--follow, after the report: the stream of new records (none after a failed read)."""
    if s.args.follow and s.failure is None:
        _follow(s, r["records"][-1]["seq"] if r["records"] else s.args.since)


def _local_tz():
    import datetime

    return datetime.datetime.now().astimezone().tzinfo


def follow_lines(records: list[dict], fmt: str) -> str:
    """New records as more lines of the same export (no header again)."""
    from .. import logs as logsmod

    if not records:
        return ""
    if fmt == "json":
        return "".join(json.dumps(r) + "\n" for r in records)
    return "".join(logsmod.export(records, fmt).splitlines(keepends=True)[1:])


def _follow(s, since: int) -> None:
    """Print events as they happen until Ctrl-C: the board's alarm lines at once, log records as the
    board's log_seq moves (checked every --interval s)."""
    import time

    from ..session import read_logs

    print(f"following the log after #{since} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        with s.session() as ses:
            link = ses.client.link
            next_check = 0.0
            while True:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + s.args.interval
                    if ses.client.request("status").get("log_seq", since) > since:
                        got = read_logs(ses.client, since=since)
                        if got.records:
                            since = got.records[-1]["seq"]
                            sys.stdout.write(follow_lines(got.records, s.args.format))
                            sys.stdout.flush()
                    ses.client.events.clear()  # alarm lines read with a reply: their records follow
                line = link.readline(0.05)
                if line and line.startswith(b"{"):
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(ev, dict) and ev.get("event"):
                        print(f"# {ev.get('event')}: " + " ".join(f"{k}={v}" for k, v in ev.items() if k != "event"),
                              file=sys.stderr, flush=True)
                        next_check = 0.0  # its record is in the log now: read it at once
    except KeyboardInterrupt:
        print("stopped following", file=sys.stderr)
