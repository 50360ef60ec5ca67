"""`pumpctl provision`: new keys for a board at rest, a keystore on this computer and /keys.json on the
board (written through mpremote, checked by SHA-256), then a restart that must report the keys ok."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import PumpctlError, RefusedError, keys
from .client import Client


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
        raise RefusedError("therapy is running on the board: keys are changed only at rest "
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
