# Who this device is and whom it trusts: the device id, made once and kept in data/device_id, and the
# role keys from keys.json. No default secrets: without valid keys every change is refused.
# Why: docs/link-security.md.
import json
import os

from itpump import auth, eventlog, store


class Identity:
    def __init__(self, board, root, journal):
        self.root = root
        # "<board>-<hex>" of the chip's unique_id() when it is a real serial, else of 6 random bytes: a
        # unique_id of one repeated byte (all zeros on the emulated RP2040) would give every such board
        # the same id. A board that gives its id as text (the test boards) keeps it; an id stored is kept.
        uid = getattr(board, "unique_id", None)
        raw = uid() if uid is not None else b""
        v = raw if isinstance(raw, str) else ""
        path = root + "data/device_id"
        if not v:
            try:
                with open(path) as f:
                    v = f.read().strip()
            except OSError:
                pass
        if not v:
            if not raw or raw.count(raw[:1]) == len(raw):
                raw = os.urandom(6)
            v = "%s-%s" % (board.name, "".join("%02x" % x for x in raw))
            try:
                with open(path, "w") as f:
                    f.write(v)
            except OSError:
                pass
        self.device_id = v
        # keys.json -> the authenticator; absent or bad: no keys, every change refused (a bad file logged)
        self.keys_state = "none"  # "none", "ok" or "invalid: why" (status, boot event)
        keys = None
        try:
            with open(root + "keys.json") as f:
                keys = auth.keys_from_json(f.read())
            self.keys_state = "ok"
        except OSError:
            pass
        except ValueError as e:
            self.keys_state = "invalid: %s" % e
            journal.event(eventlog.STORE_PROBLEM, 0, eventlog.STORE_KEYS)
        self.auth = auth.Authenticator(board.clock, auth.FileCounters(root + "data/ctr.json"), keys,
                                       on_event=journal.on_auth)

    def set_keys(self, keys):
        """New role keys (hex) into the authenticator and keys.json (they hold after a reset); ValueError
        names a bad key and changes nothing. Returns the roles."""
        doc = {"v": 1, "keys": keys}
        keys = auth.keys_from_json(json.dumps(doc))
        store.write_json(self.root + "keys.json", doc)  # on flash first: a failed write installs nothing
        self.auth.set_keys(keys)
        self.keys_state = "ok"
        return sorted(keys)
