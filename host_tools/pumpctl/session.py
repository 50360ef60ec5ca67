"""Therapy operations on a connected board: the library under `pumpctl program/bolus/refill/logs/...`.

Everything here talks to the device through a Client (reads unsigned, changes signed with the
keystore of the board's device id) or, for offline checks, imports the firmware's own modules
(prescription.py, logs.py). Amounts typed by a person (ug, uL, mL) become the integer units the
firmware takes (ng, nL) exactly, or are refused: no float ever reaches the pump.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from . import PumpctlError, keys
from . import logs as logsmod
from . import units as U
from .client import Client, DeviceError

MAX_LOG_RECORDS = 200  # firmware ops.MAX_LOG_RECORDS: records per `logs` reply
MIN_PAGE = 10  # smallest page read_logs falls back to when the board runs short of heap
ROLE_FOR = {"patient_bolus": "patient", "service": "service"}  # every other change: clinician


MAX_INT = 0x3FFFFFFF  # firmware protocol.MAX_INT: the largest amount an op takes (small ints on the rp2)


def parse_amount(text: str | int, scale: int, name: str, minimum: int = 1, maximum: int = MAX_INT) -> int:
    """'2.5' with scale 1000 -> 2500: a decimal amount in integer sub-units, exactly, or a clear error
    (checked here, before anything is signed or sent)."""
    try:
        d = Decimal(str(text).strip().replace("_", ""))
    except InvalidOperation:
        raise PumpctlError(f"{name} {text!r} is not a number") from None
    if not d.is_finite():
        raise PumpctlError(f"{name} {text!r} is not a number")
    v = d * scale
    if v != v.to_integral_value():
        raise PumpctlError(f"{name} {text}: finer than the pump's step of {Decimal(1) / scale}")
    if int(v) < minimum:
        raise PumpctlError(f"{name} {text}: must be at least {Decimal(minimum) / scale}")
    if int(v) > maximum:
        raise PumpctlError(f"{name} {text}: must be at most {Decimal(maximum) / scale}")
    return int(v)


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

    def change(self, op: str, args: dict | None = None, role: str | None = None, label: str | None = None) -> dict:
        """A signed change; label names it in errors (the command the user typed, e.g. resume)."""
        return self.client.change(op, args, self.keystore(), role or ROLE_FOR.get(op, "clinician"), label=label)


# -- change arguments (validated here so a typo never costs a counter or a log record) ------------


def bolus_args(dose_ug: str | None = None, minutes: int | None = None, prime: bool = False,
               volume_ul: str | None = None) -> dict:
    if minutes is None:
        raise PumpctlError("bolus: --minutes N is required (how long the bolus runs)")
    if not 1 <= minutes <= 1440:
        raise PumpctlError(f"bolus: --minutes {minutes} must be 1..1440")
    if prime:
        if dose_ug is not None:
            raise PumpctlError("bolus --prime fills the catheter by volume: give --volume-ul, not --dose-ug")
        a: dict = {"kind": "prime", "duration_min": minutes}
        if volume_ul is not None:
            a["volume_nl"] = parse_amount(volume_ul, 1000, "--volume-ul")
        return a
    if volume_ul is not None:
        raise PumpctlError("bolus: --volume-ul is for --prime; a clinician bolus is a dose (--dose-ug)")
    if dose_ug is None:
        raise PumpctlError("bolus: give --dose-ug X (clinician), --prime, or --patient")
    return {"kind": "clinician", "dose_ng": parse_amount(dose_ug, 1000, "--dose-ug"), "duration_min": minutes}


def refill_args(drug: str, conc_ug_per_ml: str, added_ml: str, removed_ml: str, rx: dict | None = None) -> dict:
    if not drug or not drug.strip():
        raise PumpctlError("refill: --drug must name the drug")
    a = {"drug": drug.strip(), "conc_ug_per_ml": parse_amount(conc_ug_per_ml, 1, "--conc-ug-per-ml"),
         "added_nl": parse_amount(added_ml, 1_000_000, "--added-ml"),
         "removed_nl": parse_amount(removed_ml, 1_000_000, "--removed-ml", minimum=0)}
    if rx is not None:
        a["rx"] = rx
    return a


# Density of air-free water at 1 atm, ug per mL (= 1e-6 mg/uL), whole degrees 15-30 C: Kell's equation on
# ITS-90 (Bettin and Spieweck), as tabulated in the CRC Handbook of Chemistry and Physics (53rd ed., p. F-4:
# 15.0 C 0.999099 g/mL) and in IP Standard Methods 1998, Appendix G. Later CRC editions (IAPWS) differ by
# at most 4 ppm (20 C: 0.998207), below a 1 mg balance's resolution on a 3 g weighing.
WATER_UG_PER_ML = {15: 999099, 16: 998942, 17: 998774, 18: 998595, 19: 998404, 20: 998203, 21: 997991,
                   22: 997769, 23: 997537, 24: 997295, 25: 997043, 26: 996782, 27: 996511, 28: 996232,
                   29: 995943, 30: 995645}
WATER_T_MIN_C = min(WATER_UG_PER_ML)
WATER_T_MAX_C = max(WATER_UG_PER_ML)


def water_density_ug_per_ml(temp_c: str | int) -> int:
    """Water density at temp_c (decimal, 0.1 C resolution, 15..30), interpolated between whole degrees
    and rounded DOWN (a lighter water reads as more volume: the calibration never under-counts)."""
    t10 = parse_amount(temp_c, 10, "--water-temp-c", minimum=-(10**9))
    if not WATER_T_MIN_C * 10 <= t10 <= WATER_T_MAX_C * 10:
        raise PumpctlError(f"--water-temp-c {temp_c}: outside the density table "
                           f"({WATER_T_MIN_C}..{WATER_T_MAX_C} C); bring the water to room temperature")
    i, tenths = divmod(t10, 10)
    d = WATER_UG_PER_ML[i]
    if tenths:
        d -= -(-(d - WATER_UG_PER_ML[i + 1]) * tenths // 10)
    return d


def mass_to_nl(mass_mg: str, water_temp_c: str | int = 20) -> tuple[int, int]:
    """A weighed mass of water -> (volume in nL rounded UP, density used in ug/mL). Rounded up as the
    firmware's calibrate rounds pl_per_step up: counting a little more per step never under-counts."""
    mass_ug = parse_amount(mass_mg, 1000, "--mass-mg")
    dens = water_density_ug_per_ml(water_temp_c)
    return -(-mass_ug * 1_000_000 // dens), dens


def calibrate_args(measured_ul: str | None, steps: int, mass_mg: str | None = None,
                   water_temp_c: str | int | None = None) -> dict:
    """The calibrate op's args from a measured volume (--measured-ul) or a weighed mass of water
    (--mass-mg, at --water-temp-c, default 20 C), and the confirmed microsteps that delivered it."""
    if steps < 1:
        raise PumpctlError(f"calibrate: --steps {steps} must be at least 1")
    if (measured_ul is None) == (mass_mg is None):
        raise PumpctlError("calibrate: give either --mass-mg X (weighed water) or --measured-ul V, not both")
    if mass_mg is None:
        if water_temp_c is not None:
            raise PumpctlError("calibrate: --water-temp-c goes with --mass-mg (a volume needs no density)")
        return {"measured_nl": parse_amount(str(measured_ul), 1000, "--measured-ul"), "steps": steps}
    nl = mass_to_nl(mass_mg, 20 if water_temp_c is None else water_temp_c)[0]
    return {"measured_nl": nl, "steps": steps}


def time_sync_args(now_s: float | None = None, tz_min: int | None = None) -> dict:
    return {"unix_s": int(time.time() if now_s is None else now_s),
            "tz_min": local_tz_min() if tz_min is None else tz_min}


# -- provisioning ---------------------------------------------------------------------------------


def provision(port: str, force: bool = False, keys_root: Path | str | None = None, timeout_s: float = 3.0,
              restart_timeout_s: float | None = None, say: Callable[[str], None] = lambda s: None) -> dict:
    """New keys for the board on port: generate (staged), write /keys.json through mpremote, adopt them,
    restart, check the board reports keys ok. Refused while therapy runs or (without force) when keys
    for the device exist. The restart wait is timeout_s plus the board's boot budget unless
    restart_timeout_s is given. Returns {"device_id", "keystore", "roles"}."""
    from .flash import device_boot_budget_s
    from .link import Link
    from .mpr import Device, local_sha256

    with Link(port) as link:
        st = Client(link, timeout_s).request("status")
    dev = st.get("device_id")
    if not isinstance(dev, str):
        raise PumpctlError("the board reports no device id: flash current firmware first (pumpctl flash)")
    if st.get("running"):
        raise PumpctlError("therapy is running on the board: keys are changed only at rest "
                           "(pumpctl suspend first, or pumpctl service)")
    current = keys.path(dev, keys_root)
    if current.exists() and not force:
        raise PumpctlError(f"keys for {dev} exist at {current}: refusing to replace them "
                           "(pumpctl provision --force makes new ones; the old ones stop working)")
    staging = current.parent / ".staging"
    staged = keys.provision(dev, staging, force=True)
    try:
        data = staged.device_file()
        say(f"writing /keys.json ({len(data)} bytes) to {dev}")
        with Device(port) as d:
            d.write_file("/keys.json", data)
            if d.sha256("/keys.json") != local_sha256(data):
                raise PumpctlError("/keys.json on the board does not match what was written: provision again")
            # the board holds the new keys from now: adopt them before anything else can fail
            ks = keys.adopt(staged, keys_root)
            boot_s = device_boot_budget_s(d)
            d.soft_reset()
    finally:
        if staged.path.exists():
            staged.path.unlink()
    with Link(port) as link:
        st = Client(link).wait_ready(timeout_s + boot_s if restart_timeout_s is None else restart_timeout_s)
    if st.get("keys") != "ok":
        raise PumpctlError(f"the board restarted but reports keys {st.get('keys')!r}, not ok")
    return {"device_id": dev, "keystore": str(ks.path), "roles": ks.roles()}


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


# -- human readable figures -----------------------------------------------------------------------


def _conc(ug_per_ml) -> str:
    return U.fmt_conc(ug_per_ml) if isinstance(ug_per_ml, int) else "-"


def _mass(ng) -> str:
    return U.fmt_mass(ng) if isinstance(ng, int) else "-"


def rotor_text(rot: dict) -> str:
    """The rotor index line of `pumpctl status`. Until the first index edge (after boot or a stall) the
    flow within a roller pass is not compensated: short windows (31 min) are off by up to the head's
    pulsation, for up to one pass (3.8 h at 0.1 mL/day); a prime crosses edges at once (docs/hardware.md)."""
    if not rot.get("known"):
        return ("phase NOT KNOWN yet: short-window accuracy reduced until the first index edge "
                "(up to one roller pass; `pumpctl bolus --prime` finds it)")
    txt = f"phase known, {rot.get('edges', 0)} index edges, {rot.get('gaps_known', 0)} magnet gaps learnt"
    owed = rot.get("owed_pl") or 0
    if owed:
        txt += f", {owed / 1000:+.1f} nL re-priced still to settle"
    return txt


def therapy_rows(st: dict) -> list[tuple[str, str]]:
    """The therapy lines of `pumpctl status` from a status reply. Measured volumes are floored
    (units.fmt_volume_floor): what is left is never shown as more than it is."""
    vol = U.fmt_volume_floor
    rows: list[tuple[str, str]] = []
    th = st.get("therapy")
    if "therapy" in st:
        if th is None:
            rows.append(("therapy", "not programmed"))
        else:
            rows.append(("drug", f"{th.get('drug')} {_conc(th.get('conc_ug_per_ml'))}"))
            state = "suspended" if th.get("suspended") else ("running" if st.get("running") else "stopped")
            rows.append(("mode", f"{th.get('mode')} ({state}), prescription #{th.get('rx_id')}"))
            rows.append(("daily dose", f"{_mass(th.get('day_dose_ng'))} = {vol(th.get('day_volume_nl'))}/day"))
            if th.get("bolus"):
                rows.append(("bolus", f"{th['bolus']} running, {vol(th.get('bolus_left_nl'))} left"))
            if th.get("bridge_left_nl"):
                rows.append(("bridge", f"{vol(th['bridge_left_nl'])} of old fluid left in the line"))
    if "rate_nl_per_h" in st:
        rows.append(("rate now", U.fmt_rate(st["rate_nl_per_h"])))
    nxt = st.get("next_step")
    if nxt:
        what = U.fmt_rate(nxt["rate_nl_per_h"]) if "rate_nl_per_h" in nxt else f"bolus {U.fmt_volume(nxt['bolus_nl'])}"
        rows.append(("next step", f"{what} at {U.fmt_time_of_day(nxt['at_min'])} (in {nxt['in_min']} min)"))
    if "delivered_today_nl" in st:
        rows.append(("delivered", f"{vol(st['delivered_today_nl'])} today, {vol(st.get('delivered_total_nl'))} total"))
    booked = st.get("unconfirmed_nl")
    if isinstance(booked, dict) and booked.get("total"):  # the reserve rule after resets: counted, not pulsed
        rows.append(("booked at resets", f"{vol(booked.get('boot'))} this boot, {vol(booked['total'])} in all, "
                                         "as delivered without confirmed pulses"))
    if "reservoir_nl" in st:
        drug = st.get("reservoir_drug")
        r = vol(st["reservoir_nl"]) + (f" of {drug} {_conc(st.get('reservoir_conc_ug_per_ml'))}" if drug else "")
        dte = st.get("days_to_empty", -1)
        if isinstance(dte, int) and dte >= 0:
            empty = datetime.date.today() + datetime.timedelta(days=dte)
            r += f", {dte} days to empty: refill by {empty.isoformat()}"
        rows.append(("reservoir", r))
    rot = (st.get("line") or {}).get("rotor")
    if isinstance(rot, dict):
        rows.append(("rotor", rotor_text(rot)))
    if "alarms" in st:
        rows.append(("alarms", ", ".join(st["alarms"]) or "none"))
    if "halt" in st:
        rows.append(("halted by", ", ".join(st["halt"]) or "-"))
    b = st.get("battery", st.get("battery_mv"))
    if isinstance(b, dict) and b.get("fault"):  # an implausible reading: no voltage to show
        rows.append(("battery", f"{b.get('state', '?')}: sensor fault (reads {b.get('reading_mv', '?')} mV)"))
    elif isinstance(b, dict):  # power.py's monitor: state, average
        mv = b.get("avg_mv", b.get("mv"))
        rows.append(("battery", f"{b.get('state', '?')}" + (f", {mv} mV" if mv is not None else "")))
    elif b is not None:
        rows.append(("battery", f"{b} mV" if isinstance(b, int) else str(b)))
    if "keys" in st:
        rows.append(("keys", str(st["keys"]) + (" (changes locked out)" if st.get("auth_locked") else "")))
    if st.get("time_source"):
        rows.append(("clock", st["time_source"] + (f", {logsmod.wall_iso(st['wall_s'])}" if st.get("wall_s") else "")))
    return rows
