"""Prescriptions on the host: a TOML file in clinical units -> the prescription dict the pump takes,
validated offline by the firmware's own prescription module; refusals, diffs and views in clinical units,
and the running prescription written back as a file. The file format: docs/pumpctl.md (prescription.py)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from . import REPO_ROOT, PumpctlError, units


class PrescriptionError(PumpctlError):
    """Refused: the message in clinical units; .field, .value, .limit as the pump would report them
    (None for a value that never reached the pump's check)."""

    def __init__(self, message: str, field: str | None = None, value: Any = None, limit: Any = None):
        super().__init__(message)
        self.field = field
        self.value = value
        self.limit = limit


def prescription_module():
    """The firmware's prescription module: the validation the pump runs (the same file)."""
    fw = str(REPO_ROOT / "firmware")
    if fw not in sys.path:
        sys.path.insert(0, fw)
    from itpump import prescription

    return prescription


def drugs_module():
    """The firmware's drug library (the same table the pump checks against)."""
    prescription_module()
    from itpump import drugs

    return drugs


# -- clinical keys -> pump keys ---------------------------------------------------------------------

# pump key -> (kind, clinical names taking text with a unit, {key: unit} taking a number, divisor)
_Spec = tuple[str, tuple[str, ...], dict[str, str], int]
_CONC: _Spec = ("conc", ("concentration", "conc"), {"conc_ug_per_ml": "ug/mL", "conc_mg_per_ml": "mg/mL"}, 1)
_CATH: _Spec = ("volume", ("catheter_volume",), {"catheter_volume_nl": "nL", "catheter_volume_ul": "uL",
                                                   "catheter_volume_ml": "mL"}, 1)
_DOSE_DAY: _Spec = ("dose_rate", ("dose",), {"dose_ng_per_day": "ng/day", "dose_ug_per_day": "ug/day",
                                              "dose_mg_per_day": "mg/day"}, 1)
_DOSE: _Spec = ("mass", ("dose",), {"dose_ng": "ng", "dose_ug": "ug", "dose_mg": "mg"}, 1)
_START: _Spec = ("time_of_day", ("start",), {"start_min": "min"}, 1)
_OVER: _Spec = ("duration", ("over", "duration"), {"duration_min": "min", "duration_h": "h"}, 1)
_LOCKOUT: _Spec = ("duration", ("lockout",), {"lockout_min": "min", "lockout_h": "h"}, 1)
_EVERY: _Spec = ("duration", ("every",), {"every_h": "h"}, 60)

_TABLES: dict[str, dict[str, _Spec | None]] = {
    "": {"drug": None, "conc_ug_per_ml": _CONC, "catheter_volume_nl": _CATH, "mode": None,
         "dose_ng_per_day": _DOSE_DAY, "flex": None, "periodic": None, "patient_bolus": None},
    "flex": {"start_min": _START, "dose_ng_per_day": _DOSE_DAY},
    "periodic": {"dose_ng": _DOSE, "every_h": _EVERY, "start_min": _START, "duration_min": _OVER},
    "patient_bolus": {"dose_ng": _DOSE, "duration_min": _OVER, "lockout_min": _LOCKOUT, "max_per_day": None},
}
# how each pump key is written back (to_toml, views): clinical name and kind
_WRITE = {"conc_ug_per_ml": "concentration", "catheter_volume_nl": "catheter_volume", "dose_ng_per_day": "dose",
          "dose_ng": "dose", "start_min": "start", "duration_min": "over", "lockout_min": "lockout",
          "every_h": "every"}

# pump field path -> (typed key path, typed value, unit to answer in, kind, divisor)
Origins = dict[str, tuple[str, Any, str | None, str, int]]


def _convert_table(src: Any, table: str, path: str, origins: Origins) -> dict:
    if not isinstance(src, dict):
        raise PrescriptionError(f"{path[:-1] or 'prescription'}: must be a table")
    specs = _TABLES[table]
    lookup: dict[str, tuple[str, str | None]] = {}  # typed key -> (pump key, unit for a number)
    for pk, spec in specs.items():
        if spec is None:
            lookup[pk] = (pk, None)
            continue
        for name in spec[1]:
            lookup[name] = (pk, None)
        for k, unit in spec[2].items():
            lookup[k] = (pk, unit)
    out: dict = {}
    for key, value in src.items():
        if key not in lookup:
            known = sorted(k for k in lookup if k not in ("conc",))
            raise PrescriptionError(f"{path}{key}: unknown field; allowed here: {', '.join(known)}",
                                    path + key, value, known)
        pk, unit = lookup[key]
        if pk in out:
            raise PrescriptionError(f"{path}{key}: {path}{_WRITE.get(pk, pk)} is given twice (once is enough)",
                                    path + pk, value, None)
        spec = specs[pk]
        if spec is None:
            if pk == "flex":
                if not isinstance(value, list):
                    raise PrescriptionError("flex: must be a list of [[flex]] steps", "flex", value, None)
                out[pk] = [_convert_table(s, "flex", f"flex[{i}].", origins) for i, s in enumerate(value)]
            elif pk in ("periodic", "patient_bolus"):
                out[pk] = _convert_table(value, pk, pk + ".", origins)
            else:
                out[pk] = value
            continue
        kind, _names, _keys, div = spec
        if kind == "conc" and unit == "ug/mL" and isinstance(value, int) and not isinstance(value, bool):
            n = value  # the pump's own key as the pump takes it
        else:
            try:
                n = units.to_pump(value, kind, path + key, unit)
            except units.UnitError as e:
                raise PrescriptionError(str(e), path + pk, value, None) from None
        if n % div:
            raise PrescriptionError(f"{path}{key} = {units._typed(value)}: must be a whole number of hours",
                                    path + pk, value, None)
        out[pk] = n // div
        typed_unit = unit if unit is not None else str(value).strip().lstrip("+-0123456789_.,eE ") or None
        if kind == "time_of_day" and isinstance(value, str) and ":" in value:
            typed_unit = None
        origins[path + pk] = (path + key, value, typed_unit, kind, div)
    return out


def from_clinical(doc: dict) -> tuple[dict, Origins]:
    """A parsed file (clinical or pump keys) -> (the pump's prescription dict, where each value came from)."""
    origins: Origins = {}
    return _convert_table(doc, "", "", origins), origins


def _limit_text(limit: Any, kind: str, unit: str | None, div: int) -> str:
    if isinstance(limit, bool) or not isinstance(limit, int):
        return repr(limit)
    v = limit * div
    if kind == "time_of_day":
        return units.fmt_time_of_day(v)
    if unit is not None and units.unit_scale(kind, unit) is not None:
        return units.in_unit(v, kind, unit)
    return {"mass": units.fmt_mass, "dose_rate": units.fmt_dose_rate, "conc": units.fmt_conc,
            "volume": units.fmt_volume, "duration": units.fmt_duration}[kind](v)


_FIELD_KIND = {"total_ng_per_day": ("daily dose (basal + boluses at their daily maximum)", "dose_rate"),
               "total_nl_per_day": ("daily volume (basal + boluses at their daily maximum)", None)}


def _refusal(e, origins: Origins, source: str) -> PrescriptionError:
    """The firmware's LimitError told in the units that were typed: 'dose = "20 mg/day": above ...'."""
    text = str(e)
    head, tail = f"{e.field} = {e.value!r}: ", f" {e.limit!r}"
    why = text[len(head):len(text) - len(tail)] if text.startswith(head) and text.endswith(tail) else text
    why = units.clinical_text(why)
    o = origins.get(e.field)
    if o is not None:
        key, typed, unit, kind, div = o
        msg = f"{key} = {units._typed(typed)}: {why} {_limit_text(e.limit, kind, unit, div)}"
    elif e.field in _FIELD_KIND:
        label, kind = _FIELD_KIND[e.field]
        if kind is None:
            msg = f"{label} {units.fmt_volume(e.value)}/day: {why} {units.fmt_volume(e.limit)}/day"
        else:
            msg = f"{label} {units.fmt_dose_rate(e.value)}: {why} {units.fmt_dose_rate(e.limit)}"
    else:
        leaf = e.field.rsplit(".", 1)[-1].split("[")[0]
        name = e.field[: len(e.field) - len(leaf)] + _WRITE.get(leaf, leaf) if leaf in _WRITE else e.field
        msg = f"{name} = {units._typed(e.value)}: {why} {e.limit!r}"
    return PrescriptionError(f"{source}: {msg}", e.field, e.value, e.limit)


def validate(rx: dict, source: str = "prescription", origins: Origins | None = None) -> dict:
    """Validate a pump prescription dict with the firmware module; returns its normalised copy or raises
    PrescriptionError in clinical units."""
    fw = prescription_module()
    try:
        return fw.validate(rx)
    except fw.LimitError as e:
        raise _refusal(e, origins or {}, source) from None


def parse(doc: dict, source: str = "prescription") -> dict:
    """A prescription in clinical units (or the pump's keys) as a dict -> the validated pump dict."""
    try:
        rx, origins = from_clinical(doc)
    except PrescriptionError as e:
        raise PrescriptionError(f"{source}: {e}", e.field, e.value, e.limit) from None
    return validate(rx, source, origins)


def loads(text: str, source: str = "<string>") -> dict:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PrescriptionError(f"{source}: not valid TOML: {e}") from None
    return parse(doc, source)


def load(path: str | Path) -> dict:
    """Read a TOML prescription file and validate it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PrescriptionError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PrescriptionError(f"{p}: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}): save it "
                                "as UTF-8") from None
    return loads(text, str(p))


def summary(rx: dict) -> dict:
    """Derived figures (rates in nL/h, daily dose and volume) as the pump computes them."""
    return prescription_module().Prescription(rx).summary()


# -- pump dict -> clinical text -----------------------------------------------------------------------


def _clinical_value(pk: str, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        return v
    return {"conc_ug_per_ml": units.fmt_conc, "catheter_volume_nl": units.fmt_volume,
            "dose_ng_per_day": units.fmt_dose_rate, "dose_ng": units.fmt_mass, "start_min": units.fmt_time_of_day,
            "duration_min": units.fmt_duration,
            "lockout_min": units.fmt_duration, "every_h": lambda h: units.fmt_duration(h * 60)}.get(pk, lambda x: x)(v)


def clinical(rx: dict) -> dict:
    """The pump dict with clinical keys and values ("dose": "1 mg/day"), nested as in the file."""
    out: dict = {}
    for pk, v in rx.items():
        if isinstance(v, list):
            out[pk] = [clinical(s) for s in v]
        elif isinstance(v, dict):
            out[pk] = clinical(v)
        else:
            out[_WRITE.get(pk, pk)] = _clinical_value(pk, v)
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(v)


def to_toml(rx: dict, header: str = "") -> str:
    """The prescription as a file in clinical units that load()s back to the same prescription."""
    rx = validate(rx)
    c = clinical(rx)
    lines = [f"# {ln}" if ln else "#" for ln in header.splitlines()]
    subs = []
    for k, v in c.items():
        if isinstance(v, list):
            for step in v:
                subs.append(f"\n[[{k}]]")
                subs += [f"{sk} = {_toml_value(sv)}" for sk, sv in step.items()]
        elif isinstance(v, dict):
            subs.append(f"\n[{k}]")
            subs += [f"{sk} = {_toml_value(sv)}" for sk, sv in v.items()]
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines + subs) + "\n"


# -- side-by-side diff -------------------------------------------------------------------------------


def _flatten(v: Any, prefix: str, out: dict) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            _flatten(x, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        for i, x in enumerate(v):
            _flatten(x, f"{prefix}[{i}]", out)
    else:
        out[prefix] = v


def _order(field: str, top: tuple, seen: list) -> tuple:
    head = field.split(".")[0].split("[")[0]
    idx = int(field.split("[")[1].split("]")[0]) if "[" in field else -1
    return (top.index(head) if head in top else len(top), idx, seen.index(field))


def derived(rx: dict) -> list[tuple[str, str]]:
    """What the pump computes from a prescription, for a person: basal rates, daily dose and volume."""
    s = summary(rx)
    rows = [("basal rate", ", ".join(units.fmt_rate(r) for r in s["basal_nl_per_h"])),
            ("daily dose", units.fmt_dose_rate(s["day_dose_ng"])
             + (" (boluses at their daily maximum)" if "patient_volume_nl" in s or "periodic_volume_nl" in s else "")),
            ("daily volume", units.fmt_volume_per_day(s["day_volume_nl"]))]
    if "periodic_volume_nl" in s:
        rows.append(("periodic bolus", f"{units.fmt_volume(s['periodic_volume_nl'])} at "
                                       f"{units.fmt_rate(s['periodic_rate_nl_per_h'])}"))
    if "patient_volume_nl" in s:
        rows.append(("patient bolus", f"{units.fmt_volume(s['patient_volume_nl'])} at "
                                      f"{units.fmt_rate(s['patient_rate_nl_per_h'])}"))
    return rows


def diff(old: dict | None, new: dict | None) -> list[tuple[str, Any, Any, bool]]:
    """Rows (field, old text, new text, changed) for a side-by-side view, in clinical units: every
    prescription field (None where a side lacks it), then the derived figures as ``=name`` rows. Either
    side may be None (first programming). Both sides are validated first."""
    sides = []
    for rx in (old, new):
        flat: dict = {}
        der: dict = {}
        if rx is not None:
            rx = validate(rx)
            _flatten(clinical(rx), "", flat)
            der = dict(derived(rx))
        sides.append((flat, der))
    top = tuple(_WRITE.get(k, k) for k in prescription_module().FIELDS)
    seen = list(sides[1][0]) + [f for f in sides[0][0] if f not in sides[1][0]]
    fields = sorted(seen, key=lambda f: _order(f, top, seen))
    rows = [(f, sides[0][0].get(f), sides[1][0].get(f), sides[0][0].get(f) != sides[1][0].get(f))
            for f in fields]
    dkeys = list(sides[1][1]) + [k for k in sides[0][1] if k not in sides[1][1]]
    for k in dkeys:
        a, b = sides[0][1].get(k), sides[1][1].get(k)
        rows.append((f"={k}", a, b, a != b))
    return rows
