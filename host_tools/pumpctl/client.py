"""Protocol client: requests over a Link, replies matched by id, events collected on the side."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import TYPE_CHECKING

from . import EXIT_REFUSED, EXIT_TIMEOUT, PumpctlError
from .link import Link

if TYPE_CHECKING:
    from .keys import Keystore

DEFAULT_TIMEOUT_S = 3.0
BOOT_GRACE_S = 0.5  # wait_ready: after a 'boot' event, a request still queued is answered by then
IDLESS_GRACE_S = 2.0  # after an id-less error, our own reply (if the error was not ours) comes by then
MAX_ID = 0x3FFFFFFF  # firmware protocol.MAX_ID

# Refusals of a signed change, told as what to do ({op}, {role}, {keys} = the keystore path, {msg} = the
# board's own message). Codes not listed are shown as the board words them ("op: CODE: message").
AUTH_HINTS = {
    "AUTH_NOKEYS": "board has no keys: run pumpctl provision",
    "AUTH_MAC": "the board refused the signature: the {role} key in {keys} is not this board's "
                "(keystore replaced or tampered with? re-provision: pumpctl provision --force)",
    "AUTH_REPLAY": "the board refused a replayed counter ({msg}): the keystore {keys} is older than the "
                   "board's state (restored from a backup?); re-provision: pumpctl provision --force",
    "AUTH_FORBIDDEN": "the {role} role may not '{op}' on this board",
    "AUTH_LOCKED": "changes as {role} are held back after wrong signatures: {msg}",
    "DUPLICATE": "the board already handled this exact request ({msg})",
    "AUTH_STATE": "the board cannot keep its counters (flash problem): changes refused ({msg})",
    "AUTH_MISSING": "the board wants a signed request for '{op}' ({msg})",
    "AUTH_ROLE": "the board does not know the role '{role}'",
}


class DeviceError(PumpctlError):
    """The board refused a request: it carries the board's error code and message."""

    exit_code = EXIT_REFUSED

    def __init__(self, code: str, message: str, op: str, text: str | None = None):
        super().__init__(text or f"{op}: {code}: {message}")
        self.code = code
        self.message = message
        self.op = op


class NoReplyError(PumpctlError):
    """No reply in time (board busy, at the REPL, or not itpump)."""

    exit_code = EXIT_TIMEOUT


class Client:
    def __init__(self, link: Link, timeout_s: float = DEFAULT_TIMEOUT_S, clock=time.monotonic):
        self.link = link
        self.timeout_s = timeout_s
        self.events: list[dict] = []
        # random first id: a late reply meant for an earlier, interrupted tool is never taken for ours
        self._ids = itertools.count(1 + secrets.randbelow(MAX_ID // 2))
        self.clock = clock  # seconds; a test passes its own
        self._fresh = True

    def _send(self, data: bytes) -> None:
        """Write a request; the first one goes after a newline, which ends any partial line an
        interrupted tool left in the board's input (the board answers that one with an id-less error)."""
        if self._fresh:
            self._fresh = False
            data = b"\n" + data
        self.link.write(data)

    def request(self, op: str, args: dict | None = None, timeout_s: float | None = None) -> dict:
        req_id = next(self._ids)
        frame = {"id": req_id, "op": op}
        if args:
            frame["args"] = args
        self._send(json.dumps(frame, separators=(",", ":")).encode() + b"\n")
        return self._await(req_id, op, timeout_s or self.timeout_s)

    def change(self, op: str, args: dict | None, keystore: Keystore, role: str = "clinician",
               timeout_s: float | None = None, label: str | None = None) -> dict:
        """A signed change as role (counter reserved on disk first). Refusals raise DeviceError whose
        text says what to do (AUTH_HINTS); the board applied nothing then. label names the change in
        errors (default: op)."""
        name = label or op
        req_id = next(self._ids)
        self._send(keystore.signed_line(req_id, op, args, role))
        try:
            return self._await(req_id, name, timeout_s or self.timeout_s)
        except DeviceError as e:
            hint = AUTH_HINTS.get(e.code)
            if hint is None:
                raise
            text = hint.format(op=name, role=role, keys=keystore.path, msg=e.message)
            raise DeviceError(e.code, e.message, name, f"{name}: {text}") from None

    def _await(self, req_id: int, op: str, timeout_s: float) -> dict:
        """The reply to req_id. An error without an id (a line the board could not read) may be ours or
        a leftover's: our own reply, if it comes, comes right after it; else the error is ours."""
        deadline = self.clock() + timeout_s
        idless: dict | None = None
        while True:
            left = deadline - self.clock()
            line = self.link.readline(max(0.0, left)) if left > 0 else None
            if line is None:
                if idless is not None:
                    err = idless.get("error") or {}
                    raise DeviceError(err.get("code", "?"), err.get("message", ""), op)
                raise NoReplyError(self._no_reply(op, timeout_s))
            msg = _decode(line)
            if msg is None:
                continue  # REPL text, boot banner: not protocol
            if "event" in msg:
                self.events.append(msg)
                continue
            if "ok" not in msg:
                continue
            if msg.get("id") is None and not msg.get("ok") and idless is None:
                idless = msg
                deadline = min(deadline, self.clock() + IDLESS_GRACE_S)
                continue
            if msg.get("id") != req_id:
                continue  # a late reply to an earlier request, or our own line echoed by a REPL
            if msg.get("ok"):
                return msg.get("result", {})
            err = msg.get("error") or {}
            raise DeviceError(err.get("code", "?"), err.get("message", ""), op)

    def _no_reply(self, op: str, timeout_s: float) -> str:
        tail = self.link.pending_text()
        if tail.endswith(b">>> ") or tail.endswith(b">"):
            return (f"board on {self.link.port} is at the MicroPython REPL, itpump is not running: pumpctl "
                    f"restart --port {self.link.port} runs it (pumpctl flash if its firmware is missing)")
        return f"board not answering on {self.link.port}: no reply to '{op}' in {timeout_s:.1f} s"

    def wait_ready(self, timeout_s: float) -> dict:
        """After a restart: ask for the status until the firmware answers. One request at a time: send,
        wait for its reply (or its timeout), then ask again; a booting board reads its input only once
        it runs, and requests sent every fraction of a second pile up there and starve its first ticks
        (watchdog). A 'boot' event or an id-less error (our line glued to a partial one) means the
        request will get no reply: ask again at once; after a 'boot' event, soon. A late reply to an
        earlier try counts."""
        deadline = self.clock() + timeout_s
        sent: set[int] = set()
        while (left := deadline - self.clock()) > 0:
            req_id = next(self._ids)
            sent.add(req_id)
            self._send(json.dumps({"id": req_id, "op": "status"}, separators=(",", ":")).encode() + b"\n")
            attempt_end = self.clock() + min(max(self.timeout_s, 0.5), left)
            while (wait := attempt_end - self.clock()) > 0:
                line = self.link.readline(wait)
                if line is None:
                    break
                msg = _decode(line)
                if msg is None:
                    continue
                if "event" in msg:
                    if msg.get("event") == "boot":  # a reset: what was sent before may be gone
                        attempt_end = min(attempt_end, self.clock() + BOOT_GRACE_S)
                    self.events.append(msg)
                    continue
                if "ok" not in msg:
                    continue
                if msg.get("id") is None and not msg.get("ok"):
                    break
                if msg.get("id") not in sent:
                    continue
                if msg.get("ok"):
                    return msg.get("result", {})
                err = msg.get("error") or {}
                raise DeviceError(err.get("code", "?"), err.get("message", ""), "status")
        raise NoReplyError(f"board on {self.link.port} did not come back within {timeout_s:.0f} s "
                           "of the restart")

    def wait_event(self, name: str, timeout_s: float) -> dict:
        """Wait for an unsolicited event (e.g. 'boot' after a restart)."""

        for ev in self.events:
            if ev.get("event") == name:
                self.events.remove(ev)
                return ev
        deadline = self.clock() + timeout_s
        while (left := deadline - self.clock()) > 0:
            line = self.link.readline(left)
            if line is None:
                break
            msg = _decode(line)
            if msg and msg.get("event") == name:
                return msg
            if msg and "event" in msg:
                self.events.append(msg)
        raise NoReplyError(f"board on {self.link.port} sent no '{name}' event in {timeout_s:.1f} s")


def _decode(line: bytes) -> dict | None:
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None
