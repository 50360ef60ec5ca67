"""Host keystore: per-device, per-role HMAC-SHA256 keys and the counters that sign changes, one file per
device (0600), counters on disk before a frame is returned. Where it lives and the frame format:
docs/pumpctl.md (keys.py); the link's rules: docs/link-security.md."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from pathlib import Path

import filelock
import platformdirs

from . import PumpctlError

ENV = "ITPUMP_KEYS"
ENV_DIR = "ITPUMP_KEYS_DIR"  # the same, by the name the CLI documents (wins when both are set)
ROLES = ("patient", "clinician", "service")  # firmware/itpump/auth.py ROLES (a test keeps them equal)
KEY_LEN = 32
MAX_CTR = 0x3FFFFFFF  # firmware protocol.MAX_CTR
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeystoreError(PumpctlError):
    pass


POSIX = os.name == "posix"  # file modes and directory fsync mean something there only


def legacy_keys_dir() -> Path:
    """Where keystores were kept before the platform's user data dir (still read)."""
    return Path.home() / ".config" / "itpump" / "keys"


def keys_dir() -> Path:
    env = os.environ.get(ENV_DIR) or os.environ.get(ENV)
    return Path(env).expanduser() if env else platformdirs.user_data_path("itpump", appauthor=False) / "keys"


def path(device_id: str, root: Path | str | None = None) -> Path:
    """Where the keystore of device_id lives (it may not exist yet): under root, else keys_dir(), or
    the old location when only that one holds it."""
    if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
        raise KeystoreError(f"device id {device_id!r} is not a safe file name "
                            "(letters, digits, '.', '_', '-'; at most 64)")
    if root is not None:
        return Path(root) / f"{device_id}.json"
    p = keys_dir() / f"{device_id}.json"
    env = os.environ.get(ENV_DIR) or os.environ.get(ENV)
    if not env and not p.exists():
        old = legacy_keys_dir() / f"{device_id}.json"
        if old.exists():
            return old
    return p


def mac_hex(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(role: str, key: bytes, body_bytes: bytes) -> bytes:
    """The request line (with its LF) for body_bytes signed by role's key.

    body_bytes must be the JSON request carrying this role and a counter: the MAC covers exactly these
    bytes, so they are sent as they are."""
    if len(key) != KEY_LEN:
        raise KeystoreError(f"key for '{role}' must be {KEY_LEN} bytes")
    if b"\t" in body_bytes or b"\n" in body_bytes or b"\r" in body_bytes:
        raise KeystoreError("request body must be one line without TAB")
    try:
        obj = json.loads(body_bytes)
    except ValueError as e:
        raise KeystoreError(f"request body is not JSON: {e}") from None
    if not isinstance(obj, dict) or obj.get("role") != role:
        raise KeystoreError(f"request body must carry \"role\": \"{role}\"")
    ctr = obj.get("ctr")
    if not isinstance(ctr, int) or isinstance(ctr, bool) or not 0 < ctr <= MAX_CTR:
        raise KeystoreError(f"request body must carry a counter 1..{MAX_CTR}")
    return body_bytes + b"\t" + mac_hex(key, body_bytes).encode() + b"\n"


def _ensure_dir(d: Path) -> None:
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if POSIX and stat.S_IMODE(d.stat().st_mode) != 0o700:
        os.chmod(d, 0o700)


def _write_private(p: Path, data: dict) -> None:
    """Atomic, durable write with mode 0600: temp file, fsync, rename, fsync the directory."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if POSIX:  # the rename is durable once the directory is synced (Windows has no directory fsync)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _locked(p: Path) -> filelock.FileLock:
    """Exclusive lock for read-modify-write of one keystore (other pumpctl processes wait); an OS lock
    (flock, or msvcrt on Windows), released by the OS if pumpctl dies."""
    return filelock.FileLock(str(p.with_name(f".{p.name}.lock")), mode=0o600)


def _read(p: Path) -> dict:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeystoreError(f"no keys for this device at {p}: provision it first "
                            "(pumpctl provision)") from None
    if POSIX and stat.S_IMODE(st.st_mode) & 0o077:
        raise KeystoreError(f"{p} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                            f"chmod 600 it and treat its keys as leaked (provision new ones)")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise KeystoreError(f"keystore {p} is unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("keys"), dict) \
            or not isinstance(data.get("counters"), dict):
        raise KeystoreError(f"keystore {p} is not an itpump keystore (v1)")
    return data


class Keystore:
    """Keys and counters of one device. Counters are re-read from disk under the lock on every use."""

    def __init__(self, device_id: str, p: Path, keys: dict[str, bytes]):
        self.device_id = device_id
        self.path = p
        self.keys = keys

    def roles(self) -> list[str]:
        return sorted(self.keys)

    def counters(self) -> dict[str, int]:
        return dict(_read(self.path)["counters"])

    def next_counter(self, role: str) -> int:
        """Reserve role's next counter; it is on disk before this returns."""
        if role not in self.keys:
            raise KeystoreError(f"no '{role}' key for device {self.device_id} (roles: "
                                f"{', '.join(self.roles()) or 'none'})")
        with _locked(self.path):
            data = _read(self.path)
            last = data["counters"].get(role, 0)
            if not isinstance(last, int) or last < 0:
                raise KeystoreError(f"keystore {self.path}: counter of '{role}' is corrupt")
            if last >= MAX_CTR:
                raise KeystoreError(f"counter of '{role}' exhausted: provision new keys")
            data["counters"][role] = last + 1
            _write_private(self.path, data)
        return last + 1

    def signed_line(self, req_id: int, op: str, args: dict | None, role: str) -> bytes:
        """A complete signed request line for op, with a fresh counter (persisted first)."""
        ctr = self.next_counter(role)
        frame = {"id": req_id, "op": op}
        if args:
            frame["args"] = args
        frame["role"] = role
        frame["ctr"] = ctr
        body = json.dumps(frame, separators=(",", ":")).encode()
        return sign(role, self.keys[role], body)

    def device_file(self, roles: tuple[str, ...] | list[str] | None = None) -> bytes:
        """The key file for the board (firmware auth.keys_from_json reads it): the roles given."""
        roles = self.roles() if roles is None else list(roles)
        missing = [r for r in roles if r not in self.keys]
        if missing:
            raise KeystoreError(f"no key for role(s) {', '.join(missing)}")
        return (json.dumps({"v": 1, "keys": {r: self.keys[r].hex() for r in roles}},
                           separators=(",", ":")) + "\n").encode()


def _keystore(device_id: str, p: Path, data: dict) -> Keystore:
    keys = {}
    for role, h in data["keys"].items():
        if role not in ROLES:
            raise KeystoreError(f"keystore {p}: unknown role '{role}'")
        try:
            k = bytes.fromhex(h)
        except (TypeError, ValueError):
            k = b""
        if len(k) != KEY_LEN:
            raise KeystoreError(f"keystore {p}: key of '{role}' is not {KEY_LEN} bytes of hex")
        keys[role] = k
    return Keystore(device_id, p, keys)


def load(device_id: str, root: Path | str | None = None) -> Keystore:
    p = path(device_id, root)
    return _keystore(device_id, p, _read(p))


def provision(device_id: str, root: Path | str | None = None, roles=ROLES, force: bool = False) -> Keystore:
    """Create fresh random keys for device_id (counters at 0). Refuses to replace existing keys unless
    force: the old keys would be lost and the board would still hold them. Installing the new keys on
    the board (which resets its counters) is a separate step: Keystore.device_file() is its input."""
    p = path(device_id, root)
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise KeystoreError(f"roles must be among {', '.join(ROLES)}")
    _ensure_dir(p.parent)
    with _locked(p):
        if p.exists() and not force:
            raise KeystoreError(f"keys for {device_id} exist at {p}: refusing to replace them "
                                "(use force to provision new keys)")
        data = {
            "v": 1,
            "device_id": device_id,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "keys": {r: secrets.token_bytes(KEY_LEN).hex() for r in roles},
            "counters": {r: 0 for r in roles},
        }
        _write_private(p, data)
    return _keystore(device_id, p, data)


def adopt(staged: Keystore, root: Path | str | None = None) -> Keystore:
    """Move a keystore provisioned elsewhere (a staging dir) into place for its device, atomically.

    pumpctl provision stages new keys first and adopts them once the board holds them: a failed
    transfer leaves the user's current keys untouched."""
    p = path(staged.device_id, root)
    _ensure_dir(p.parent)
    with _locked(p):
        data = _read(staged.path)
        _write_private(p, data)
        with contextlib.suppress(OSError):
            os.unlink(staged.path)
    return _keystore(staged.device_id, p, data)
