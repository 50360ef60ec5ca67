"""Prescriptions on the host: a TOML file -> the prescription dict the pump takes, validated offline by
the firmware's own therapy module (imported from firmware/, never reimplemented), and a field-by-field
diff for a side-by-side review before sending.

TOML layout mirrors the dict: top-level keys, ``[[flex]]`` steps, ``[periodic]``, ``[patient_bolus]``
(see examples/*.toml). Integers only: the pump does its dose arithmetic in integers and refuses floats.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from . import REPO_ROOT, PumpctlError


class PrescriptionError(PumpctlError):
    """Refused by the firmware's validation: .field, .value, .limit as the pump would report them."""

    def __init__(self, message: str, field: str | None = None, value: Any = None, limit: Any = None):
        super().__init__(message)
        self.field = field
        self.value = value
        self.limit = limit


def therapy_module():
    """The firmware's therapy module (the same file the pump runs)."""
    fw = str(REPO_ROOT / "firmware")
    if fw not in sys.path:
        sys.path.insert(0, fw)
    from itpump import therapy

    return therapy


def validate(rx: dict, source: str = "prescription") -> dict:
    """Validate with the firmware module; returns its normalised copy or raises PrescriptionError."""
    therapy = therapy_module()
    try:
        return therapy.validate(rx)
    except therapy.LimitError as e:
        raise PrescriptionError(f"{source}: {e}", e.field, e.value, e.limit) from None


def loads(text: str, source: str = "<string>") -> dict:
    try:
        rx = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PrescriptionError(f"{source}: not valid TOML: {e}") from None
    return validate(rx, source)


def load(path: str | Path) -> dict:
    """Read a TOML prescription file and validate it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PrescriptionError(f"{p}: cannot read: {e.strerror}") from None
    return loads(text, str(p))


def summary(rx: dict) -> dict:
    """Derived figures (rates in nL/h, daily dose and volume) as the pump computes them."""
    return therapy_module().Therapy(rx).summary()


def _flatten(v: Any, prefix: str, out: dict) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            _flatten(x, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        for i, x in enumerate(v):
            _flatten(x, f"{prefix}[{i}]", out)
    else:
        out[prefix] = v


def _order(field: str, top: tuple) -> tuple:
    head = field.split(".")[0].split("[")[0]
    idx = int(field.split("[")[1].split("]")[0]) if "[" in field else -1
    return (top.index(head) if head in top else len(top), idx, field)


def diff(old: dict | None, new: dict | None) -> list[tuple[str, Any, Any, bool]]:
    """Rows (field, old value, new value, changed) for a side-by-side view: every prescription field
    (None where a side lacks it), then the derived figures as ``=name`` rows. Either side may be None
    (first programming). Both sides are validated first."""
    therapy = therapy_module()
    sides = []
    for rx in (old, new):
        flat: dict = {}
        derived: dict = {}
        if rx is not None:
            rx = validate(rx)
            _flatten(rx, "", flat)
            _flatten(therapy.Therapy(rx).summary(), "", derived)
        sides.append((flat, derived))
    top = therapy._TOP
    fields = sorted(set(sides[0][0]) | set(sides[1][0]), key=lambda f: _order(f, top))
    rows = [(f, sides[0][0].get(f), sides[1][0].get(f), sides[0][0].get(f) != sides[1][0].get(f))
            for f in fields]
    dkeys = list(sides[1][1]) + [k for k in sides[0][1] if k not in sides[1][1]]
    for k in dkeys:
        if k in fields:
            continue  # already a prescription row (drug, concentration, mode)
        a, b = sides[0][1].get(k), sides[1][1].get(k)
        rows.append((f"={k}", a, b, a != b))
    return rows
