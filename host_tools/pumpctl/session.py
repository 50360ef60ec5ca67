"""A board behind a Client: reads, changes signed with the keystore of its device id, the arguments of
those changes (checked here, so a typo never costs a counter or a log record) and the event log read
page by page. Typed amounts become the pump's integers in units.py; nothing here prints.
"""

from __future__ import annotations

import datetime
import difflib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from . import PumpctlError, UsageError, keys, prescription
from . import logs as logsmod
from .client import Client, DeviceError
from .units import TIME_MIN, clinical_text, fmt_conc, mass_to_nl, parse_amount

MAX_LOG_RECORDS = 200  # firmware ops.MAX_LOG_RECORDS: records per `logs` reply
MIN_PAGE = 10  # smallest page read_logs falls back to when the board runs short of heap


def role_for(op: str) -> str:
    """The role whose key signs op: the firmware's own permission table (auth.PERMISSIONS), not a copy."""
    from itpump import auth  # the firmware's module, on the path through logs (one table, one definition)

    return next((r for r in auth.ROLES if op in auth.PERMISSIONS[r]), auth.CLINICIAN)


def local_tz_min(now: datetime.datetime | None = None) -> int:
    """The host's UTC offset in minutes now (DST included)."""
    off = (now or datetime.datetime.now()).astimezone().utcoffset()
    return int(off.total_seconds() // 60) if off is not None else 0


class Session:
    """A board behind a Client, with the keystore of its device id (loaded on first change)."""

    def __init__(self, client: Client, keys_root: Path | str | None = None):
        self.client = client
        self.keys_root = keys_root
        self._status: dict | None = None
        self._ks: keys.Keystore | None = None

    def status(self, fresh: bool = True) -> dict:
        if fresh or self._status is None:
            self._status = self.client.request("status")
        return self._status

    @property
    def device_id(self) -> str:
        dev = self.status(fresh=False).get("device_id")
        if not isinstance(dev, str):
            raise PumpctlError("the board reports no device id (firmware too old for signed changes?)")
        return dev

    def keystore(self) -> keys.Keystore:
        if self._ks is None:
            self._ks = keys.load(self.device_id, self.keys_root)
        return self._ks

    def read(self, op: str, args: dict | None = None) -> dict:
        return self.client.request(op, args)

    def change(self, op: str, args: dict | None = None, role: str | None = None, label: str | None = None,
               options: dict[str, tuple[str, int]] | None = None) -> dict:
        """A signed change; label names it in errors (the command the user typed, e.g. resume). A value
        the board refuses (LIMIT) is told in clinical units, and by the option typed when options maps
        its field (OPTIONS)."""
        try:
            return self.client.change(op, args, self.keystore(), role or role_for(op), label=label)
        except DeviceError as e:
            if e.code != "LIMIT":
                raise
            raise DeviceError(e.code, e.message, e.op, f"{e.op}: {limit_text(e.message, options or {})}") from None


# The options of the change arguments below: field -> (option, the field's units per the option's unit, as
# parse_amount scales it); a refusal naming the field is told with the option.
OPTIONS = {"dose_ng": ("--dose-ug", 1000), "duration_min": ("--minutes", 1), "volume_nl": ("--volume-ul", 1000),
           "conc_ug_per_ml": ("--conc-ug-per-ml", 1), "added_nl": ("--added-ml", 1_000_000),
           "removed_nl": ("--removed-ml", 1_000_000), "measured_nl": ("--measured-ul", 1000), "steps": ("--steps", 1)}
_LIMIT_RE = re.compile(r"(\w+) = (-?\d+): (.*) (-?\d+)")  # firmware LimitError: "field = value: why limit"


def limit_text(message: str, options: dict[str, tuple[str, int]]) -> str:
    """The board's LimitError message in clinical units; 'duration_min = 10: too short: 3000000 nL/h ...;
    minimum 31' with options reads '--minutes 10: too short: 3000 uL/h ...; minimum 31'."""
    m = _LIMIT_RE.fullmatch(message)
    if m is None or m[1] not in options:
        return clinical_text(message)
    option, scale = options[m[1]]
    return f"{option} {Decimal(int(m[2])) / scale}: {clinical_text(m[3])} {Decimal(int(m[4])) / scale}"


# -- change arguments (validated here so a typo never costs a counter or a log record) ------------


def bolus_args(dose_ug: str | None = None, minutes: str | int | None = None, prime: bool = False,
               volume_ul: str | None = None) -> dict:
    if minutes is None:
        raise UsageError("bolus: --minutes N is required (how long the bolus runs)")
    duration_min = parse_amount(minutes, 1, "--minutes", maximum=TIME_MIN["day"])  # a bolus runs at most a day
    if prime:
        if dose_ug is not None:
            raise UsageError("bolus --prime fills the catheter by volume: give --volume-ul, not --dose-ug")
        a: dict = {"kind": "prime", "duration_min": duration_min}
        if volume_ul is not None:
            a["volume_nl"] = parse_amount(volume_ul, 1000, "--volume-ul")
        return a
    if volume_ul is not None:
        raise UsageError("bolus: --volume-ul is for --prime; a clinician bolus is a dose (--dose-ug)")
    if dose_ug is None:
        raise UsageError("bolus: give --dose-ug X (clinician), --prime, or --patient")
    return {"kind": "clinician", "dose_ng": parse_amount(dose_ug, 1000, "--dose-ug"), "duration_min": duration_min}


def refill_args(drug: str, conc_ug_per_ml: str, added_ml: str, removed_ml: str, rx: dict | None = None) -> dict:
    """The refill op's args. A drug or concentration outside the drug library is refused here, by the
    reservoir's own check: with a prescription running the pump would first answer that the refill
    "needs its prescription", sending whoever typed 10 for 10 mg/mL to write one at 10 ug/mL."""
    if not drug or not drug.strip():
        raise PumpctlError("refill: --drug must name the drug")
    a = {"drug": library_drug(drug.strip()), "conc_ug_per_ml": parse_amount(conc_ug_per_ml, 1, "--conc-ug-per-ml"),
         "added_nl": parse_amount(added_ml, 1_000_000, "--added-ml"),
         "removed_nl": parse_amount(removed_ml, 1_000_000, "--removed-ml", minimum=0)}
    check_library_conc(a["drug"], a["conc_ug_per_ml"])
    if rx is not None:
        if (rx.get("drug"), rx.get("conc_ug_per_ml")) != (a["drug"], a["conc_ug_per_ml"]):  # the pump's MISMATCH
            raise PumpctlError(f"refill: --rx is for {rx.get('drug')} {fmt_conc(rx.get('conc_ug_per_ml', 0))}, the "
                               f"refill is {a['drug']} {fmt_conc(a['conc_ug_per_ml'])}: give the prescription for "
                               "what goes in the reservoir")
        a["rx"] = rx
    return a


def library_drug(name: str) -> str:
    drugs = prescription.drugs_module()
    if name not in drugs.DRUGS:
        close = difflib.get_close_matches(name.lower(), drugs.names(), n=1)
        raise PumpctlError(f"refill: --drug {name}: not in the drug library" + (f" (did you mean {close[0]}?)" if close
                           else "") + "; pumpctl drugs lists them")
    return name


def check_library_conc(drug: str, conc_ug_per_ml: int) -> None:
    """The reservoir's own check of a refill's concentration (firmware check_int), told as the option typed."""
    lim = prescription.drugs_module().limits(drug)  # puts firmware/ on the path
    from itpump import LimitError, check_int

    try:
        check_int("conc_ug_per_ml", conc_ug_per_ml, lim[0], lim[1])
    except LimitError as e:
        raise PumpctlError(f"refill: {limit_text(str(e), OPTIONS)} ug/mL ({drug} comes at {fmt_conc(lim[0])} to "
                           f"{fmt_conc(lim[1])})") from None


def calibrate_args(measured_ul: str | None, steps: int, mass_mg: str | None = None,
                   water_temp_c: str | int | None = None) -> dict:
    """The calibrate op's args from a measured volume (--measured-ul) or a weighed mass of water
    (--mass-mg, at --water-temp-c, default 20 C), and the confirmed microsteps that delivered it."""
    if steps < 1:
        raise PumpctlError(f"calibrate: --steps {steps} must be at least 1")
    if measured_ul is not None and mass_mg is not None:
        raise UsageError("calibrate: give either --mass-mg X (weighed water) or --measured-ul V, not both")
    if measured_ul is None and mass_mg is None:
        raise UsageError("calibrate: give --mass-mg X (the weighed water) or --measured-ul V (the volume)")
    if mass_mg is None:
        if water_temp_c is not None:
            raise UsageError("calibrate: --water-temp-c goes with --mass-mg (a volume needs no density)")
        return {"measured_nl": parse_amount(str(measured_ul), 1000, "--measured-ul"), "steps": steps}
    nl = mass_to_nl(mass_mg, 20 if water_temp_c is None else water_temp_c)[0]
    return {"measured_nl": nl, "steps": steps}


def alarm_code(typed: str) -> str:
    """An alarm's code as `ack` sends it: one of the firmware's own names (alarms.TABLE; any case), or
    "all". Anything else is refused here, naming the codes, before a request is signed or sent."""
    prescription.prescription_module()  # puts firmware/ on the path
    from itpump import alarms

    code = typed.strip()
    if code.lower() == "all":
        return "all"
    if code.upper() in alarms.NAMES:
        return code.upper()
    close = difflib.get_close_matches(code.upper(), alarms.NAMES, n=1)
    raise UsageError(f"ack: unknown alarm {typed!r}" + (f" (did you mean {close[0]}?)" if close else "")
                     + f"; the codes: {', '.join(alarms.NAMES)}, or all")


def time_sync_args(now_s: float | None = None, tz_min: int | None = None) -> dict:
    return {"unix_s": int(time.time() if now_s is None else now_s),
            "tz_min": local_tz_min() if tz_min is None else tz_min}


# -- event log over the link ----------------------------------------------------------------------


@dataclass
class LogRead:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pages: int = 0
    bytes: int = 0  # record bytes (hex decoded)
    line_bytes: int = 0  # hex characters received
    seconds: float = 0.0
    first_seq: int = 0
    last_seq: int = 0
    page: int = 0  # records per request at the end (halved on a board MemoryError)
    memory_retries: int = 0


def read_logs(client: Client, since: int = 0, page: int = MAX_LOG_RECORDS,
              progress: Callable[[int, int], None] | None = None, timeout_s: float = 10.0) -> LogRead:
    """Every record with seq > since, page by page (op `logs`), decoded by the firmware's format.
    Problems: the board's (damaged segments) and the link's (a record that does not decode)."""
    if not 1 <= page <= MAX_LOG_RECORDS:
        raise PumpctlError(f"page size {page} must be 1..{MAX_LOG_RECORDS}")
    if since < 0:
        raise PumpctlError(f"--since {since} must be >= 0")
    out = LogRead()
    raw = bytearray()
    t0 = time.perf_counter()
    seen: set[str] = set()
    total = got = 0
    while True:
        try:
            rep = client.request("logs", {"since": since, "max": page}, timeout_s=timeout_s)
        except DeviceError as e:
            # the board could not build the reply in its heap: ask for half as many (nothing changed)
            if e.code == "INTERNAL" and "MemoryError" in e.message and page > MIN_PAGE:
                page = max(MIN_PAGE, page // 2)
                out.memory_retries += 1
                continue
            raise
        out.page = page
        out.pages += 1
        out.first_seq, out.last_seq = rep.get("first_seq", 0), rep.get("last_seq", 0)
        if out.pages == 1:
            total = max(0, out.last_seq - max(since, out.first_seq - 1))
        for p in rep.get("problems", []):
            if p not in seen:
                seen.add(p)
                out.problems.append(f"board: {p}")
        recs = rep.get("records", [])
        for h in recs:
            out.line_bytes += len(h)
            try:
                raw += bytes.fromhex(h)
            except ValueError:
                out.problems.append(f"link: record after seq {since} is not hex: {h[:24]!r}...")
        nxt = rep.get("next", since)
        got += len(recs)
        if progress is not None:
            progress(got, max(total, got))
        if not recs or nxt <= since or nxt >= out.last_seq:
            break
        since = nxt
    d = logsmod.decode(bytes(raw), "link")
    out.records = d.records
    out.problems += d.problems
    out.bytes = len(raw)
    out.seconds = time.perf_counter() - t0
    return out
