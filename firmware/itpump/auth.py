# Authentication of changes on the link: body TAB hex(HMAC-SHA256(key[role], body)), a per-role counter
# above the last accepted one (persisted before the change applies), role permissions, a capped delay
# after wrong MACs, DUPLICATE for a resend. No default secrets. Policy and reasons: docs/link-security.md.
import binascii
import hashlib
import json

from micropython import const

from itpump import protocol, store

KEY_LEN = const(32)
_BLOCK = const(64)  # SHA-256 block size (RFC 2104 B)

PATIENT = "patient"
CLINICIAN = "clinician"
SERVICE = "service"
ROLES = (PATIENT, CLINICIAN, SERVICE)

# Which role may do which change: exactly the change ops of ops.table (tests/firmware/test_permissions.py).
# Reads need no role and are not listed. An op listed here is guarded even if the ops table forgot to
# mark it CHANGE; an op marked CHANGE but listed nowhere is forbidden.
PERMISSIONS = {
    PATIENT: ("patient_bolus",),
    CLINICIAN: ("program", "refill", "bolus", "ack", "calibrate", "time_set", "suspend", "cancel_bolus"),
    SERVICE: ("service", "keys"),
}

_FREE_FAILURES = const(3)  # wrong MACs per role before each further one holds the role back
_DELAY_MS = const(1000)  # the first hold; it doubles with every further wrong MAC
_DELAY_MAX_MS = const(30000)  # and is capped: an attacker slows the clinician, never locks them out
_QUIET_MS = const(10000)  # refusals that do not count are logged at most once per this
_CACHE_SIZE = const(4)  # applied changes remembered to answer a resend as DUPLICATE

# Security event kinds passed to on_event(kind, info)
EV_FAIL = "auth_fail"  # info: code, role, op, id, ctr (and suppressed: uncounted ones not logged)
EV_LOCKOUT = "auth_lockout"  # info: role, failures, delay_ms (a wrong MAC past the free ones)
EV_DUPLICATE = "auth_duplicate"  # info: role, op, id, outcome ("ok" or the original error code)
EV_STATE = "auth_state"  # info: code, message (counter store failed)
EV_KEYS = "auth_keys"  # info: roles (keys installed)


# -- HMAC-SHA256 (RFC 2104): MicroPython has hashlib.sha256 but no hmac module ---------------------


def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        b = key[i] if i < len(key) else 0
        ipad[i] = b ^ 0x36
        opad[i] = b ^ 0x5C
    return bytes(ipad), bytes(opad)


def _hmac(pads, msg):
    inner = hashlib.sha256(pads[0])
    inner.update(msg)
    outer = hashlib.sha256(pads[1])
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha256(key, msg):
    """HMAC-SHA256(key, msg) -> 32 bytes, as CPython's hmac.new(key, msg, 'sha256').digest()."""
    return _hmac(_pads(key), msg)


def hmac_hex(key, msg):
    return str(binascii.hexlify(hmac_sha256(key, msg)), "ascii")


def equal(a, b):
    """Constant-time comparison of two byte strings (time depends on length only)."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


# -- keys --------------------------------------------------------------------------------------------


def check_key(role, key):
    if role not in ROLES:
        raise ValueError("unknown role '%s'" % role)
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError("key for '%s' must be %d bytes" % (role, KEY_LEN))
    if len(set(key)) < 8:  # a random 32-byte key has ~30 distinct bytes: this one is a placeholder
        raise ValueError("key for '%s' is not random (placeholder?)" % role)
    return bytes(key)


def keys_from_json(text):
    """Device key file {"v":1,"keys":{role: 64 hex digits}} -> {role: 32 bytes}. ValueError if bad."""
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError("key file is not JSON")
    if not isinstance(obj, dict) or obj.get("v") != 1 or not isinstance(obj.get("keys"), dict):
        raise ValueError("key file must be {\"v\":1,\"keys\":{role: hex}}")
    out = {}
    for role, h in obj["keys"].items():
        if not isinstance(h, str) or len(h) != 2 * KEY_LEN:
            raise ValueError("key for '%s' must be %d hex digits" % (role, 2 * KEY_LEN))
        try:
            k = binascii.unhexlify(h)
        except ValueError:
            raise ValueError("key for '%s' is not hex" % role)
        out[role] = check_key(role, k)
    return out


def key_id(key):
    """Short public fingerprint of a key (16 hex digits), stored with the counters to see key changes."""
    return str(binascii.hexlify(hashlib.sha256(b"itpump-kid\0" + key).digest()[:8]), "ascii")


# -- counter stores: load() -> dict, save(dict) -------------------------------------------------------
# The dict is {role: last accepted ctr, ..., "kid": {role: key_id}}: the fingerprints let a reboot see
# that a role's key was replaced (a new key file flashed) and restart only that role's counter.


class FileCounters:
    """Counters in a small JSON file, replaced atomically (write temp, rename: atomic on littlefs).

    Missing file -> no counters yet; an unreadable file raises, and the authenticator refuses changes.
    """

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            f = open(self.path)
        except OSError:
            return {}
        with f:
            return json.loads(f.read())

    def save(self, counters):
        store.write_json(self.path, counters)


# -- the authenticator ----------------------------------------------------------------------------------


class Authenticator:
    def __init__(self, clock, counters, keys=None, on_event=None, permissions=None,
                 free_failures=_FREE_FAILURES, delay_ms=_DELAY_MS, delay_max_ms=_DELAY_MAX_MS,
                 quiet_ms=_QUIET_MS, cache_size=_CACHE_SIZE):
        if free_failures < 0 or cache_size < 1 or delay_ms < 1 or delay_max_ms < delay_ms or quiet_ms < 0:
            raise ValueError("free_failures >= 0, cache_size >= 1, 1 <= delay_ms <= delay_max_ms")
        self._clock = clock
        self._store = counters
        self._on_event = on_event
        self._perm = PERMISSIONS if permissions is None else permissions
        self._free = free_failures
        self._delay_ms = delay_ms
        self._delay_max_ms = delay_max_ms
        self._quiet_ms = quiet_ms
        self._fails = {}  # {role: wrong MACs since its last good one}
        self._held = {}  # {role: (tick of the last wrong MAC, hold ms)}
        self._logged_at = None  # tick an uncounted refusal was last logged
        self._suppressed = 0  # uncounted refusals not logged since
        self._cache = [None] * cache_size  # type: list  # (role, mac bytes, id, outcome)
        self._cache_i = 0
        self._keys = {}  # {role: key}; the HMAC pads are made per change (kept, 3 roles held 528 B)
        self._last = None  # {role: last accepted ctr}; None = unknown, changes refused
        self._kid = {}  # {role: key_id} as stored with the counters
        self._load_counters()
        if keys:
            self._install(keys, False)

    # -- public --------------------------------------------------------------------------------------
    def guards(self, op):
        """True if op is a change some role may do (so dispatch must run it through auth)."""
        for ops in self._perm.values():
            if op in ops:
                return True
        return False

    def has_keys(self):
        return bool(self._keys)

    def held_ms(self, role):
        """How long changes as role are still held back after wrong MACs (0: not held)."""
        h = self._held.get(role)
        if h is None:
            return 0
        elapsed = self._clock.ticks_diff(self._clock.ticks_ms(), h[0])
        if elapsed < 0 or elapsed >= h[1]:  # negative: beyond the tick half-period, long over
            return 0
        return h[1] - elapsed

    def locked(self):
        """True while some role is held back."""
        for role in self._held:
            if self.held_ms(role):
                return True
        return False

    def last_counters(self):
        return None if self._last is None else dict(self._last)

    def set_keys(self, keys):
        """Install {role: 32-byte key} (the keys op). A role whose key changed restarts its counter at 0:
        every frame signed before fails the new key's MAC. Raises ValueError for a bad key, OSError if
        the counters cannot be saved (then changes stay refused)."""
        self._install(keys, True)

    def run(self, req, apply):
        """Authenticate the change req (a protocol.Request); apply() -> reply line only if it passes.

        Returns the reply line: apply()'s, DUPLICATE for a resend of an applied change, or an error."""
        if self._last is None:
            return self._refuse(req, protocol.E_AUTH_STATE, "counter state unavailable: changes refused")
        if not self._keys:
            return self._refuse(req, protocol.E_AUTH_NOKEYS, "no keys provisioned: changes refused")
        if req.role is None or req.ctr is None or req.mac is None:
            return self._refuse(req, protocol.E_AUTH_MISSING, "'%s' needs role, ctr and a MAC after TAB" % req.op)
        role = req.role
        if role not in ROLES:
            return self._refuse(req, protocol.E_AUTH_ROLE, "unknown role '%s'" % role)
        if role not in self._keys:
            return self._refuse(req, protocol.E_AUTH_NOKEYS, "no key provisioned for role '%s'" % role)
        held = self.held_ms(role)
        if held:  # the MAC is not even checked: guesses come no faster than the hold allows
            return self._refuse(req, protocol.E_AUTH_LOCKED, "wrong MACs for '%s': its changes are held back "
                                "for %d s more (reads work)" % (role, (held + 999) // 1000))
        mac = binascii.unhexlify(req.mac)
        if not equal(hmac_sha256(self._keys[role], req.body), mac):
            return self._wrong_mac(req)
        self._fails[role] = 0
        dup = self._cached(role, mac)
        if dup is not None:  # the same bytes again: say so, with what happened the first time
            self._event(EV_DUPLICATE, {"role": role, "op": req.op, "id": dup[2], "outcome": dup[3]})
            return (json.dumps({"id": req.id, "ok": False, "error": {
                "code": protocol.E_DUPLICATE, "of": dup[2], "outcome": dup[3],
                "message": "duplicate of request %d, which was already handled (%s): not applied again" % (
                    dup[2], dup[3])}}) + "\n").encode()
        if req.op not in self._perm.get(role, ()):
            return self._refuse(req, protocol.E_AUTH_FORBIDDEN, "role '%s' may not '%s'" % (role, req.op))
        if req.ctr <= self._last.get(role, 0):
            return self._refuse(req, protocol.E_AUTH_REPLAY, "ctr %d not above last accepted %d for '%s'" % (
                req.ctr, self._last.get(role, 0), role))
        # Persist the counter first: if power fails mid-change, the frame still cannot be replayed.
        new = dict(self._last)
        new[role] = req.ctr
        try:
            self._save(new, self._kid)
        except Exception as e:
            self._state_failed("counter not saved: %s" % type(e).__name__)
            return protocol.error_line(req.id, protocol.E_AUTH_STATE, "counter could not be saved: change refused")
        reply = apply()
        try:  # "ok" or the reply's error code, kept to answer a resend
            r = json.loads(reply)
            outcome = "ok" if r.get("ok") else r["error"]["code"]
        except Exception:
            outcome = "?"
        self._cache[self._cache_i] = (role, mac, req.id, outcome)
        self._cache_i = (self._cache_i + 1) % len(self._cache)
        return reply

    # -- internals -----------------------------------------------------------------------------------
    def _check(self, keys):
        out = {}
        for role in keys:
            out[role] = check_key(role, keys[role])
        return out

    def _install(self, keys, announce):
        checked = self._check(keys)
        changed = []
        for role in checked:
            if self._kid.get(role) != key_id(keys[role]):
                changed.append(role)
        # a role with no fingerprint yet but a used counter: keep the counter (never reopen old ones)
        reset = [r for r in changed if r in self._kid]
        if changed and self._last is not None:
            last = dict(self._last)
            kid = dict(self._kid)
            for role in changed:
                kid[role] = key_id(keys[role])
                if role in reset:
                    last[role] = 0
            try:
                self._save(last, kid)
            except Exception as e:
                self._state_failed("key change not saved: %s" % type(e).__name__)
                if announce:
                    raise
        self._keys = checked
        for i in range(len(self._cache)):
            self._cache[i] = None
        if announce or reset:
            self._event(EV_KEYS, {"roles": sorted(checked), "changed": sorted(changed),
                                  "counters_reset": sorted(reset)})

    def _save(self, last, kid):
        d = dict(last)
        d["kid"] = kid
        self._store.save(d)
        self._last = last
        self._kid = kid

    def _event(self, kind, info):
        if self._on_event is not None:
            try:
                self._on_event(kind, info)
            except Exception:  # the logger failing must not decide whether a request passes
                pass

    def _load_counters(self):
        try:
            d = self._store.load()
        except Exception as e:
            self._state_failed("counters not loaded: %s" % type(e).__name__)
            return
        ok = isinstance(d, dict)
        kid = d.get("kid", {}) if ok else None
        if ok and isinstance(kid, dict):
            for role in kid:
                if role not in ROLES or not isinstance(kid[role], str):
                    ok = False
        else:
            ok = False
        if ok:
            for role in d:
                v = d[role]
                if role != "kid" and (role not in ROLES or type(v) is not int or v < 0 or v > protocol.MAX_CTR):
                    ok = False
        if not ok:
            self._state_failed("counter file holds invalid data")
            return
        last = {}
        for role in d:
            if role != "kid":
                last[role] = d[role]
        self._last = last
        self._kid = dict(kid or {})

    def _state_failed(self, message):
        self._last = None  # unknown counters: refuse every change rather than reopen old ones
        self._event(EV_STATE, {"code": protocol.E_AUTH_STATE, "message": message})

    def _cached(self, role, mac):
        for e in self._cache:
            if e is not None and e[0] == role and equal(e[1], mac):
                return e
        return None

    def _refuse(self, req, code, message):
        """A refusal that does not count towards a hold: logged at most once per quiet_ms, so a flood
        of junk cannot fill the event log; the next logged one says how many were not."""
        now = self._clock.ticks_ms()
        last = self._logged_at
        if last is None or not 0 <= self._clock.ticks_diff(now, last) < self._quiet_ms:
            self._logged_at = now
            self._event(EV_FAIL, {"code": code, "role": req.role, "op": req.op, "id": req.id, "ctr": req.ctr,
                                  "suppressed": self._suppressed})
            self._suppressed = 0
        else:
            self._suppressed += 1
        return protocol.error_line(req.id, code, message)

    def _wrong_mac(self, req):
        """A wrong MAC for a keyed role: always logged; past the free ones it holds the role back for a
        delay that doubles with each, up to delay_max_ms."""
        role = req.role
        n = self._fails.get(role, 0) + 1
        self._fails[role] = n
        self._event(EV_FAIL, {"code": protocol.E_AUTH_MAC, "role": role, "op": req.op, "id": req.id, "ctr": req.ctr,
                              "suppressed": 0})
        msg = "MAC does not match"
        if n > self._free:
            k = n - self._free - 1
            hold = self._delay_max_ms if k >= 16 else min(self._delay_ms << k, self._delay_max_ms)
            self._held[role] = (self._clock.ticks_ms(), hold)
            self._event(EV_LOCKOUT, {"role": role, "failures": n, "delay_ms": hold})
            msg += ": changes as '%s' held back for %d s" % (role, (hold + 999) // 1000)
        return protocol.error_line(req.id, protocol.E_AUTH_MAC, msg)
