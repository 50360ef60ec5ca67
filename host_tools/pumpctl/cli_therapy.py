"""pumpctl therapy commands: provision, program, therapy, bolus, refill, calibrate, suspend/resume,
alarms/ack, time sync, service, logs. Thin: parsing and printing here, the work in session.py and provision.py."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from . import PumpctlError

EXIT_ERROR = 1


@contextlib.contextmanager
def _session(a) -> Iterator:
    from .cli import resolve_port
    from .client import Client
    from .link import Link
    from .session import Session

    with Link(resolve_port(a.port, a.device)) as link:
        yield Session(Client(link, timeout_s=a.timeout))


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _kv_table(title: str, rows: list[tuple[str, str]]):
    from rich.table import Table

    t = Table(title=title, show_header=False)
    for k, v in rows:
        t.add_row(k, v)
    return t


def _show(v) -> str:
    return "-" if v is None else str(v)


# -- provisioning -----------------------------------------------------------------------------------


def cmd_provision(a) -> int:
    from .cli import emit, resolve_port
    from .provision import provision

    port = resolve_port(a.port, a.device)
    res = provision(port, force=a.force, timeout_s=a.timeout, say=lambda s: print(s, file=sys.stderr))
    emit(a, res, f"provisioned {res['device_id']}: roles {', '.join(res['roles'])}; keystore {res['keystore']}; "
          "the board restarted with keys ok")
    return 0


# -- therapy ----------------------------------------------------------------------------------------


def _summary_rows(rep: dict) -> list[tuple[str, str]]:
    from . import prescription

    if rep.get("rx") is None:
        return [("therapy", "not programmed")]
    rows = [("prescription", f"#{rep.get('rx_id')}")]
    for f, _old, text, _changed in prescription.diff(None, rep["rx"]):
        rows.append((f.lstrip("=").replace("_", " "), _show(text)))
    st = rep.get("status") or {}
    if st:
        rows.append(("state", "suspended" if st.get("suspended") else "active"))
    return rows


def cmd_therapy(a) -> int:
    import datetime

    from . import prescription

    with _session(a) as s:
        rep = s.read("therapy")
        dev = s.status(fresh=False).get("device_id", "?") if a.toml else None
    if a.toml:
        if rep.get("rx") is None:
            raise PumpctlError("therapy --toml: the pump has no prescription to write")
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        print(prescription.to_toml(rep["rx"], f"prescription #{rep.get('rx_id')} running on {dev}, read {now}"),
              end="")
    elif a.json:
        from .cli import emit

        emit(a, rep)
    else:
        _console().print(_kv_table("current therapy", _summary_rows(rep)))
    return 0


def _diff_table(rows):
    from rich.table import Table

    t = Table(title="prescription: on the device -> new")
    t.add_column("field")
    t.add_column("on the device")
    t.add_column("new")
    for f, old, new, changed in rows:
        style = "bold yellow" if changed else None
        t.add_row(f, _show(old), _show(new), style=style)
    return t


def _confirm(question: str) -> bool:
    try:
        ans = _console(stderr=True).input(f"{question} [y/N] ")
    except EOFError:
        print(file=sys.stderr)
        return False
    if not sys.stdin.isatty():
        print(file=sys.stderr)  # the answer was piped: end the prompt's line
    return ans.strip().lower() in ("y", "yes")


def cmd_program(a) -> int:
    from . import history, prescription
    from .cli import emit

    if a.json and not a.yes:
        raise PumpctlError("program --json asks no question: add --yes")
    rx = prescription.load(a.file)  # validated offline first: a bad file never reaches the board
    with _session(a) as s:
        cur = s.read("therapy")
        try:
            rows = prescription.diff(cur.get("rx"), rx)
        except prescription.PrescriptionError:  # the device's rx fails this host's checks: show new only
            rows = prescription.diff(None, rx)
        if not a.json:
            _console().print(_diff_table(rows))
        if not any(r[3] for r in rows):
            emit(a, {"sent": False, "therapy": cur}, "the device already runs this prescription: nothing sent")
            return 0
        if not a.yes and not _confirm(f"program {Path(a.file).name} into the pump?"):
            raise PumpctlError("not confirmed: nothing sent")
        s.change("program", {"rx": rx})
        rep = s.read("therapy")
        history.record(s.device_id, rep.get("rx_id"), rep.get("rx") or rx, f"pumpctl program {Path(a.file).name}")
    if a.json:
        emit(a, {"sent": True, "therapy": rep})
    else:
        _console().print(_kv_table("programmed", _summary_rows(rep)))
    return 0


def cmd_bolus(a) -> int:
    from . import units as U
    from .cli import emit
    from .session import bolus_args

    if a.patient:
        if a.dose_ug is not None or a.prime or a.volume_ul is not None or a.minutes is not None:
            raise PumpctlError("bolus --patient takes no dose or duration: the prescription sets them")
        op, args = "patient_bolus", None
    else:
        op, args = "bolus", bolus_args(a.dose_ug, a.minutes, a.prime, a.volume_ul)
    with _session(a) as s:
        r = s.change(op, args)
    emit(a, r, f"{r.get('kind')} bolus started: {U.fmt_volume_floor(r.get('volume_nl'))} at "
          f"{U.fmt_rate(r.get('rate_nl_per_h'))}")
    return 0


def cmd_refill(a) -> int:
    from . import prescription
    from . import units as U
    from .cli import emit
    from .session import refill_args

    rx = prescription.load(a.rx) if a.rx else None
    args = refill_args(a.drug, a.conc_ug_per_ml, a.added_ml, a.removed_ml, rx)
    with _session(a) as s:
        r = s.change("refill", args)
    msg = (f"refilled with {args['drug']} {U.fmt_conc(args['conc_ug_per_ml'])}: reservoir "
           f"{U.fmt_volume_floor(r.get('volume_nl'))}")
    if r.get("bridge_nl"):
        msg += f"; bridging {U.fmt_volume_floor(r['bridge_nl'])} of old fluid in the line"
    emit(a, r, msg)
    if r.get("warning"):  # a pocket fill or a leak? the pump raised its refill-mismatch alarm too
        v = {k: U.fmt_volume_floor(r.get(k)) for k in ("removed_nl", "expected_nl", "mismatch_nl", "tolerance_nl")}
        print(f"warning: removed {v['removed_nl']} but the pump expected {v['expected_nl']} "
              f"(off by {v['mismatch_nl']}, tolerance {v['tolerance_nl']}): "
              "check for a pocket fill or a leak", file=sys.stderr)
    return 0


def cmd_calibrate(a) -> int:
    from .cli import emit
    from .session import calibrate_args
    from .units import mass_to_nl

    args = calibrate_args(a.measured_ul, a.steps, a.mass_mg, a.water_temp_c)  # bad input: nothing sent
    if a.mass_mg is not None and not a.json:
        t = 20 if a.water_temp_c is None else a.water_temp_c
        nl, dens = mass_to_nl(a.mass_mg, t)
        print(f"{a.mass_mg} mg of water at {t} C, density {dens // 10**6}.{dens % 10**6:06d} mg/uL: "
              f"{nl // 1000}.{nl % 1000:03d} uL ({nl} nL, rounded up) over {a.steps} steps")
    with _session(a) as s:
        r = s.change("calibrate", args)
    emit(a, r, f"calibrated: {r['pl_per_step']} pL/step (was {r['previous_pl_per_step']})")
    return 0


def cmd_suspend(a, on: bool) -> int:
    from .cli import emit

    with _session(a) as s:
        r = s.change("suspend", {"on": on}, label="suspend" if on else "resume")
    emit(a, r, "delivery suspended" if r.get("suspended") else "delivery resumed")
    return 0


def cmd_alarms(a) -> int:
    from rich.table import Table

    from .cli import emit

    with _session(a) as s:
        rep = s.read("alarms")
    if a.json:
        emit(a, rep)
        return 0
    t = Table(title="active alarms")
    for c in ("code", "priority", "condition", "acked", "escalated", "since (s uptime)"):
        t.add_column(c)
    for x in rep.get("active", []):
        t.add_row(x["code"], x["priority"], "present" if x.get("present") else "gone (latched)",
                  "yes" if x.get("acked") else "no", "yes" if x.get("escalated") else "no", str(x.get("since_s")))
    con = _console()
    if rep.get("active"):
        con.print(t)
    else:
        con.print("no active alarms")
    recent = rep.get("recent", [])
    if recent and a.recent:
        r = Table(title="recent alarm events (newest first)")
        for c in ("code", "event", "t (s uptime)"):
            r.add_column(c)
        for x in recent:
            r.add_row(x["code"], x["event"], str(x["t_s"]))
        con.print(r)
    return 0


def cmd_ack(a) -> int:
    from .cli import emit

    with _session(a) as s:
        r = s.change("ack", {"code": a.code})
    emit(a, r, f"acknowledged: {', '.join(r.get('acked', [])) or 'none'}; still active: "
          f"{', '.join(r.get('active', [])) or 'none'}")
    return 0


def cmd_time(a) -> int:
    from .cli import emit
    from .logs import wall_iso
    from .session import time_sync_args

    args = time_sync_args()
    with _session(a) as s:
        r = s.change("time_set", args)
    tz = args["tz_min"]
    prev = wall_iso(r.get("previous_wall_s", 0)) or "unset"
    emit(a, r, f"board clock set to {wall_iso(r['wall_s'])} (UTC{'+' if tz >= 0 else '-'}{abs(tz) // 60:02d}:"
          f"{abs(tz) % 60:02d}); it was {prev}")
    return 0


def cmd_service(a) -> int:
    from .cli import emit

    with _session(a) as s:
        r = s.change("service", None)
    emit(a, r, "service access: " + ("delivery suspended, " if r.get("suspended") else "")
          + f"REPL {r.get('repl', '?')} (pumpctl flash / mpremote now; pumpctl restart, then resume)")
    return 0


# -- logs -------------------------------------------------------------------------------------------


def cmd_logs(a) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import logs
    from .session import read_logs

    check_out_path(a.out, "--out")
    if a.plot:
        check_out_path(a.plot, "--plot")
        logs.check_plot_path(a.plot)  # fail before reading, not after
    err = _console(stderr=True)
    with _session(a) as s, Progress(TextColumn("reading log"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=err, transient=True,
                                    disable=not sys.stderr.isatty()) as prog:
        task = prog.add_task("logs", total=None)
        got = read_logs(s.client, since=a.since, page=a.page,
                        progress=lambda done, total: prog.update(task, completed=done, total=total))
        device_id = s.status().get("device_id") if a.plot else None
    text = "" if a.json and not a.out else logs.export(got.records, a.format)
    if a.out:
        try:
            Path(a.out).write_text(text)
        except OSError as e:
            raise PumpctlError(f"cannot write {a.out}: {e.strerror}") from None
    elif not a.json:
        sys.stdout.write(text)
    if a.plot and got.records:
        from .cli_clinic import drugs_by_rx

        logs.plot(got.records, a.plot, drugs_by_rx=drugs_by_rx(device_id), tz=_local_tz())
    print(f"read {len(got.records)} records ({got.bytes:,} bytes) in {got.seconds:.2f} s, {got.pages} pages"
          + (f"; wrote {a.out}" if a.out else "") + (f"; plot {a.plot}" if a.plot and got.records else ""),
          file=sys.stderr)
    if a.json:
        from .cli import emit

        emit(a, {"records": got.records, "pages": got.pages, "bytes": got.bytes, "problems": got.problems})
    for p in got.problems:
        print(f"pumpctl: log problem: {p}", file=sys.stderr)
    if got.problems:
        print(f"pumpctl: error: {len(got.problems)} log problem(s): what could be read was kept", file=sys.stderr)
        return EXIT_ERROR
    if a.follow:
        return _follow(a, got.records[-1]["seq"] if got.records else a.since)
    return 0


def _local_tz():
    import datetime

    return datetime.datetime.now().astimezone().tzinfo


def follow_lines(records: list[dict], fmt: str) -> str:
    """New records as more lines of the same export (no header again)."""
    from . import logs

    if not records:
        return ""
    text = logs.export(records, fmt)
    if fmt == "json":
        import json

        return "".join(json.dumps(r) + "\n" for r in records)
    return "".join(text.splitlines(keepends=True)[1:])


def _follow(a, since: int) -> int:
    """Print events as they happen until Ctrl-C: the board's alarm lines at once, log records as the
    board's log_seq moves (checked every --interval s)."""
    import json
    import time

    from .session import read_logs

    print(f"following the log after #{since} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        with _session(a) as s:
            link = s.client.link
            next_check = 0.0
            while True:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + a.interval
                    if s.client.request("status").get("log_seq", since) > since:
                        got = read_logs(s.client, since=since)
                        if got.records:
                            since = got.records[-1]["seq"]
                            sys.stdout.write(follow_lines(got.records, a.format))
                            sys.stdout.flush()
                    s.client.events.clear()  # alarm lines read with a reply: their records follow
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
    return 0


# -- parser -----------------------------------------------------------------------------------------


def check_out_path(path: str | None, option: str) -> None:
    """An output file's folder must exist: said before the board is asked, not as a traceback after."""
    if path is None:
        return
    parent = Path(path).expanduser().parent
    if not parent.is_dir():
        raise PumpctlError(f"{option} {path}: folder {parent} does not exist")


def register(sub, with_port) -> None:
    from .session import MAX_LOG_RECORDS

    sp = with_port(sub.add_parser("provision", help="new keys for the board (keystore + /keys.json), at rest"))
    sp.add_argument("--force", action="store_true", help="replace existing keys (the old ones stop working)")
    sp.set_defaults(func=cmd_provision)

    sp = with_port(sub.add_parser("therapy", help="show the current prescription"))
    sp.add_argument("--toml", action="store_true", help="write it as a prescription file (clinical units) that "
                                                        "pumpctl program loads back to the same prescription")
    sp.set_defaults(func=cmd_therapy)

    sp = with_port(sub.add_parser("program", help="program a prescription (TOML): validate, diff, confirm, send"))
    sp.add_argument("file", metavar="FILE.toml")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp.set_defaults(func=cmd_program)

    sp = with_port(sub.add_parser("bolus", help="clinician bolus (--dose-ug), catheter prime (--prime) or "
                                                "the patient's bolus (--patient)"))
    sp.add_argument("--dose-ug", help="clinician bolus dose in ug (decimals allowed, exact to 1 ng)")
    sp.add_argument("--minutes", type=int, help="duration in minutes")
    sp.add_argument("--prime", action="store_true", help="prime the catheter (default: its volume)")
    sp.add_argument("--volume-ul", help="prime volume in uL")
    sp.add_argument("--patient", action="store_true", help="the patient's bolus (patient key, prescription's dose)")
    sp.set_defaults(func=cmd_bolus)

    sp = with_port(sub.add_parser("refill", help="record a refill of the reservoir"))
    sp.add_argument("--drug", required=True)
    sp.add_argument("--conc-ug-per-ml", required=True, help="concentration in ug/mL (integer)")
    sp.add_argument("--added-ml", required=True, help="volume put in (mL)")
    sp.add_argument("--removed-ml", required=True, help="volume taken out before filling (mL)")
    sp.add_argument("--rx", metavar="FILE.toml", help="the prescription for a new drug/concentration")
    sp.set_defaults(func=cmd_refill)

    sp = with_port(sub.add_parser("calibrate", help="set volume per step from a weighed delivery "
                                                    "(docs/hardware.md: Calibration)"))
    sp.add_argument("--mass-mg", help="mass of water delivered, as the balance reads it (mg)")
    sp.add_argument("--water-temp-c", help="water temperature for its density, 15-30 C (default 20)")
    sp.add_argument("--measured-ul", help="or: the volume delivered, already in uL")
    sp.add_argument("--steps", type=int, required=True, help="confirmed microsteps that delivered it")
    sp.set_defaults(func=cmd_calibrate)

    sp = with_port(sub.add_parser("suspend", help="suspend delivery"))
    sp.set_defaults(func=lambda a: cmd_suspend(a, True))
    sp = with_port(sub.add_parser("resume", help="resume delivery"))
    sp.set_defaults(func=lambda a: cmd_suspend(a, False))

    sp = with_port(sub.add_parser("alarms", help="active alarms"))
    sp.add_argument("--recent", action="store_true", help="also the last alarm events")
    sp.set_defaults(func=cmd_alarms)

    sp = with_port(sub.add_parser("ack", help="acknowledge an alarm (its code, or 'all')"))
    sp.add_argument("code", metavar="CODE")
    sp.set_defaults(func=cmd_ack)

    sp = sub.add_parser("time", help="the board's clock")
    tsub = sp.add_subparsers(dest="tcmd", required=True, metavar="ACTION")
    with_port(tsub.add_parser("sync", help="set it from this computer's clock and time zone"))
    sp.set_defaults(func=cmd_time)

    sp = with_port(sub.add_parser("service", help="service access: suspend delivery, open the REPL (service key)"))
    sp.set_defaults(func=cmd_service)

    sp = with_port(sub.add_parser("logs", help="read the event log over the link"))
    sp.add_argument("--since", type=int, default=0, help="only records after this sequence number")
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sp.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    sp.add_argument("--plot", metavar="PNG", help="also plot delivery (programmed vs delivered), rate and reservoir "
                                                  "over dates, with alarms, boluses, refills and drug changes marked")
    sp.add_argument("--follow", action="store_true", help="then print events as they happen until Ctrl-C")
    sp.add_argument("--interval", type=float, default=1.0, help="--follow: seconds between log checks (default 1)")
    sp.add_argument("--page", type=int, default=MAX_LOG_RECORDS, help=f"records per request (1..{MAX_LOG_RECORDS})")
    sp.set_defaults(func=cmd_logs)


add_commands = register  # the name before command modules registered themselves
