"""Host-side history of every prescription sent: one JSON line per program (who, when, which device,
what), kept in the platform's user data folder (platformdirs) or $ITPUMP_DATA_DIR. Appended after the
pump accepted the prescription; never read back by the pump."""

from __future__ import annotations

import datetime
import getpass
import json
import os
from pathlib import Path

from . import PumpctlError


def data_dir() -> Path:
    if os.environ.get("ITPUMP_DATA_DIR"):
        return Path(os.environ["ITPUMP_DATA_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("itpump", appauthor=False))


def path() -> Path:
    return data_dir() / "history.jsonl"


def record(device_id: str, rx_id: int | None, rx: dict, source: str, who: str | None = None,
           now: datetime.datetime | None = None) -> dict:
    """Append one entry; returns it."""
    entry = {"at": (now or datetime.datetime.now().astimezone()).isoformat(timespec="seconds"),
             "who": who or _user(), "device_id": device_id, "rx_id": rx_id, "source": source, "rx": rx}
    p = path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n")
    except OSError as e:
        raise PumpctlError(f"the pump took the prescription, but the history {p} could not be written: "
                           f"{e.strerror}") from None
    return entry


def entries(device_id: str | None = None) -> list[dict]:
    """Every entry (oldest first), optionally only one device's; lines that do not parse are skipped."""
    p = path()
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and (device_id is None or e.get("device_id") == device_id):
            out.append(e)
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def drugs_by_rx(device_id: str | None) -> dict[int, str]:
    """Which drug each prescription id ran, from this computer's history (for marking drug changes)."""
    out: dict[int, str] = {}
    for e in entries(device_id):
        if isinstance(e.get("rx_id"), int) and isinstance(e.get("rx"), dict):
            out[e["rx_id"]] = str(e["rx"].get("drug"))
    return out
