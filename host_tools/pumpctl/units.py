"""Clinical units <-> the pump's integers, exactly, in one place: prescription text, amounts typed on
the command line, a weighed mass of water, and the text shown for each (Fractions, never floats).
The conversion rules: docs/pumpctl.md (units.py)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from . import PumpctlError, UsageError

MASS_NG = {"ng": 1, "ug": 1000, "µg": 1000, "mcg": 1000, "mg": 10**6, "g": 10**9}
VOLUME_NL = {"nl": 1, "ul": 1000, "µl": 1000, "ml": 10**6}
TIME_MIN = {"min": 1, "h": 60, "hour": 60, "hours": 60, "day": 1440, "days": 1440, "d": 1440}
MAX_PUMP_INT = 2**31 - 1  # past any firmware limit: refused here before it becomes an enormous int

# what a kind is written in, and the pump's unit for it
KINDS = {"mass": "ng", "dose_rate": "ng/day", "conc": "ug/mL", "volume": "nL", "duration": "min",
         "time_of_day": "min"}
_CANON = {"ng": "ng", "ug": "ug", "µg": "ug", "mcg": "ug", "mg": "mg", "g": "g", "nl": "nL", "ul": "uL",
          "µl": "uL", "ml": "mL", "min": "min", "h": "h", "hour": "h", "hours": "h", "day": "day",
          "days": "day", "d": "day"}


class UnitError(PumpctlError):
    """A typed value that does not convert: the message names the key, the text and the unit."""


def _number(text: str) -> Fraction | None:
    try:
        d = Decimal(text.replace("_", "").replace(",", "."))
    except InvalidOperation:
        return None
    return Fraction(d) if d.is_finite() else None


def unit_scale(kind: str, unit: str) -> Fraction | None:
    """How many pump units one `unit` is for a kind (None if the unit is not one of that kind)."""
    u = unit.strip().replace(" ", "").lower()
    if kind == "mass":
        return Fraction(MASS_NG[u]) if u in MASS_NG else None
    if kind == "volume":
        return Fraction(VOLUME_NL[u]) if u in VOLUME_NL else None
    if kind in ("duration", "time_of_day"):
        return Fraction(TIME_MIN[u]) if u in TIME_MIN else None
    if "/" not in u:
        return None
    a, b = u.split("/", 1)
    if kind == "dose_rate" and a in MASS_NG and b in TIME_MIN:
        return Fraction(MASS_NG[a] * 1440, TIME_MIN[b])
    if kind == "conc" and a in MASS_NG and b in VOLUME_NL:
        return Fraction(MASS_NG[a] * 10**6, 1000 * VOLUME_NL[b])  # ng/nL -> ug/mL
    return None


def canonical_unit(unit: str) -> str:
    return "/".join(_CANON.get(p, p) for p in unit.strip().replace(" ", "").lower().split("/"))


def _typed(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def to_pump(value: Any, kind: str, key: str, unit: str | None = None) -> int:
    """A typed value -> the pump's integer for a kind. `value` is text with a unit ("1.2 mg/day",
    "06:30" for a time of day) or, when `unit` is given (keys like dose_mg_per_day), a plain number.
    Refused with the typed value when it is not a whole number of the pump's unit or too large."""
    shown = f"{key} = {_typed(value)}"
    if kind == "time_of_day" and isinstance(value, str) and ":" in value:
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise UnitError(f"{shown}: not a time of day (HH:MM, 00:00 to 23:59)")
        return int(m.group(1)) * 60 + int(m.group(2))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{shown}: must be a number or text like {example(kind)}")
    if unit is None:
        if not isinstance(value, str):
            raise UnitError(f"{shown}: give the unit too, e.g. {example(kind)}")
        m = re.fullmatch(r"\s*([-+]?[0-9][0-9_.,]*(?:[eE][-+]?\d+)?)\s*(.*?)\s*", value)
        if not m or not m.group(2):
            raise UnitError(f"{shown}: not a number with a unit, e.g. {example(kind)}")
        num, unit = _number(m.group(1)), m.group(2)
    elif isinstance(value, str):
        raise UnitError(f"{shown}: must be a number (in {unit}), not text")
    else:
        num = _number(repr(value) if isinstance(value, float) else str(value))
    if num is None:
        raise UnitError(f"{shown}: not a number")
    scale = unit_scale(kind, unit)
    if scale is None:
        raise UnitError(f"{shown}: {unit!r} is not a unit of {kind.replace('_', ' ')} (e.g. {example(kind)})")
    v = num * scale
    if v.denominator != 1:
        step = fmt_exact(Fraction(1) / scale)
        raise UnitError(f"{shown}: not a whole {KINDS[kind]} (the pump's step is {step} {canonical_unit(unit)})")
    if abs(v) > MAX_PUMP_INT:
        raise UnitError(f"{shown}: far over any limit of the pump")
    return int(v)


def example(kind: str) -> str:
    return {"mass": '"50 ug"', "dose_rate": '"1.2 mg/day"', "conc": '"10 mg/mL"', "volume": '"0.2 mL"',
            "duration": '"10 min"', "time_of_day": '"06:30"'}[kind]


def fmt_exact(fr: Fraction) -> str | None:
    """A Fraction as exact decimal text ('1.2', '500'), or None when it has no finite decimal form."""
    den = fr.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return None
    d = Decimal(fr.numerator) / Decimal(fr.denominator)
    t = format(d.normalize(), "f")
    return t


def in_unit(pump_value: int, kind: str, unit: str) -> str:
    """A pump integer written in a given unit ('15 mg/day'), exact; falls back to the pump's unit."""
    scale = unit_scale(kind, unit)
    if scale is not None:
        t = fmt_exact(Fraction(pump_value) / scale)
        if t is not None:
            return f"{t} {canonical_unit(unit)}"
    return f"{pump_value} {KINDS[kind]}"


def _best(pump_value: int, choices: list[tuple[int, str]], kind: str) -> str:
    for least, unit in choices:
        if abs(pump_value) >= least:
            return in_unit(pump_value, kind, unit)
    return in_unit(pump_value, kind, choices[-1][1])


def fmt_mass(ng: int) -> str:
    return _best(ng, [(10**6, "mg"), (1000, "ug"), (0, "ng")], "mass")


def fmt_dose_rate(ng_per_day: int) -> str:
    return _best(ng_per_day, [(10**6, "mg/day"), (1000, "ug/day"), (0, "ng/day")], "dose_rate")


def fmt_conc(ug_per_ml: int) -> str:
    return _best(ug_per_ml, [(1000, "mg/mL"), (0, "ug/mL")], "conc")


def fmt_volume(nl: int) -> str:
    return _best(nl, [(100_000, "mL"), (1000, "uL"), (0, "nL")], "volume")


def fmt_duration(minutes: int) -> str:
    if minutes and minutes % 1440 == 0:
        return f"{minutes // 1440} day"
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def fmt_time_of_day(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- display of derived figures (not typed back: rounded for reading, units always said) ----------


def fmt_rate(nl_per_h: int | None) -> str:
    """A flow: uL/h with 3 decimals is exact to the nL/h the pump runs at."""
    if nl_per_h is None:
        return "-"
    return f"{nl_per_h // 1000} uL/h" if nl_per_h % 1000 == 0 else f"{nl_per_h / 1000:.3f} uL/h"


def fmt_volume_floor(nl: int | None) -> str:
    """A measured volume for reading: mL to 0.001 from 1 mL, uL to 0.1 below, rounded toward zero; a
    volume that is not zero but under 0.1 uL reads "<0.1 uL". The one formatter of measured volumes
    (status, report, web): what is left is never shown as more than it is (19.9996 mL reads 19.999 mL,
    not 20.000), and drug given is never shown as none (71 nL booked at a reset reads "<0.1 uL", not
    "0.0 uL"). Integer arithmetic: no float rounds a digit up."""
    if nl is None:
        return "-"
    if abs(nl) >= 1_000_000:
        return f"{'-' if nl < 0 else ''}{abs(nl) // 1_000_000}.{abs(nl) // 1000 % 1000:03d} mL"
    return _tenths_toward_zero(nl, "uL")


def fmt_nl_floor(pl: int) -> str:
    """A small volume in nL to 0.1 from pL, signed, by the same rule."""
    return _tenths_toward_zero(pl, "nL", plus="+")


def _tenths_toward_zero(v: int, unit: str, plus: str = "") -> str:
    """v / 1000 in unit to 0.1, rounded toward zero; not zero but under 0.1 reads "<0.1"."""
    sign, n = ("-" if v < 0 else plus), abs(v)
    if n < 100:
        return f"{sign}<0.1 {unit}" if n else f"0.0 {unit}"
    return f"{sign}{n // 1000}.{n // 100 % 10} {unit}"


def fmt_volume_per_day(nl: int | None) -> str:
    return "-" if nl is None else f"{fmt_volume(nl)}/day"


def days_text(days: float) -> str:
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


_NL_RE = re.compile(r"(-?\d+) nL(/day|/h)?")


def clinical_text(text: str) -> str:
    """The firmware's own messages speak nL: rewrite those figures in mL/uL for a person."""

    def sub(m: re.Match) -> str:
        n, per = int(m.group(1)), m.group(2) or ""
        return fmt_rate(n) if per == "/h" else fmt_volume(n) + per

    return _NL_RE.sub(sub, text)


# -- amounts typed on the command line (decimal text -> the pump's integer sub-units) -----------
# A bad amount is a PumpctlError: an option typed wrong, not a prescription key (UnitError).


MAX_OP_INT = 0x3FFFFFFF  # firmware protocol.MAX_INT: the largest amount an op takes (small ints on the rp2)


def parse_amount(text: str | int, scale: int, name: str, minimum: int = 1, maximum: int = MAX_OP_INT) -> int:
    """'2.5' with scale 1000 -> 2500: a decimal amount in integer sub-units, exactly, or a clear error
    (checked here, before anything is signed or sent)."""
    try:
        d = Decimal(str(text).strip().replace("_", ""))
    except InvalidOperation:  # malformed (a usage error, exit 2); a number out of range is a bad value
        raise UsageError(f"{name} {text!r} is not a number") from None
    if not d.is_finite():
        raise UsageError(f"{name} {text!r} is not a number")
    v = d * scale
    if v != v.to_integral_value():
        raise PumpctlError(f"{name} {text}: finer than the pump's step of {Decimal(1) / scale}")
    if int(v) < minimum:
        raise PumpctlError(f"{name} {text}: must be at least {Decimal(minimum) / scale}")
    if int(v) > maximum:
        raise PumpctlError(f"{name} {text}: must be at most {Decimal(maximum) / scale}")
    return int(v)


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
