# Link protocol: one JSON object per line over the USB serial (request, reply, unsolicited event; the
# frames are in README.md, "Link protocol"). Every reject is a well-formed error reply and changes
# nothing. dispatch(line, ops, auth) with ops {name: handler} (a read) or {name: (handler, CHANGE)}, or
# any object with that get(name) (ops.Table).
import json

from micropython import const

MAX_LINE = const(2048)  # bytes per request line, newline excluded
MAX_BODY = const(1983)  # JSON part: the line less TAB and 64 hex digits of MAC
_SMALL_LINE = const(256)  # the reads' lines fit: a longer line's buffer is made for it (LineReader)
_MAX_DEPTH = const(5)  # JSON nesting: request {args {list [item {...}]}} plus one; json.loads has no limit
MAX_ID = const(0x3FFFFFFF)  # ids stay small ints on the rp2 (31-bit)
MAX_CTR = const(0x3FFFFFFF)  # counters too: a billion signed changes outlives the device
MAX_INT = const(0x3FFFFFFF)  # default bound of int arguments (small ints, no bigint in the tick)
_MAX_OP_LEN = const(32)
_MAX_ROLE_LEN = const(16)
_ECHO = const(32)  # at most this much of a peer's text is echoed in an error message

READ = const(0)  # op kinds in the ops table
CHANGE = const(1)

# Error codes (stable: host tools and tests match on them)
E_FRAME = "FRAME"  # over-long line, not UTF-8, bad MAC field
E_JSON = "JSON"  # not parseable JSON
E_REQUEST = "REQUEST"  # JSON but not a valid request object
E_UNKNOWN_OP = "UNKNOWN_OP"
E_ARGS = "ARGS"  # op known, arguments wrong
E_INTERNAL = "INTERNAL"  # handler failed; state unchanged
E_DUPLICATE = "DUPLICATE"  # the exact bytes of an applied change again: not applied again (auth.py)
# Auth layer (auth.py): a change refused before it was applied
E_AUTH_MISSING = "AUTH_MISSING"  # change without role, ctr or MAC
E_AUTH_ROLE = "AUTH_ROLE"  # unknown role
E_AUTH_FORBIDDEN = "AUTH_FORBIDDEN"  # role may not do this op
E_AUTH_MAC = "AUTH_MAC"  # MAC does not match
E_AUTH_REPLAY = "AUTH_REPLAY"  # counter not above the last one accepted for the role
E_AUTH_LOCKED = "AUTH_LOCKED"  # too many failures: changes refused for a while (reads work)
E_AUTH_NOKEYS = "AUTH_NOKEYS"  # no key provisioned for the role (no default secrets)
E_AUTH_STATE = "AUTH_STATE"  # counters could not be loaded or saved: changes refused

_FEED_NONE = const(0)
FEED_LINE = const(1)
FEED_OVERFLOW = const(2)

_LF = const(10)
_CR = const(13)
_TAB = const(9)
_CTRL_A = const(1)  # mpremote's raw-REPL request and Ctrl-C: a tool wants the REPL, not a request
_CTRL_C = const(3)
_IDLE_DROP_MS = const(2000)  # a partial line this old when the next byte comes is a dead tool's: dropped

_FIELDS = const(("id", "op", "args", "role", "ctr"))


class ProtocolError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class LineReader:
    """Assembles bytes into lines: no allocation per byte, bounded memory. Lines up to small_len bytes
    (the reads: status, logs, ping) use a buffer made once; a longer one (program, keys) gets a
    max_len buffer for its time only, like its other transients (its copy, its JSON): 2 KB less heap
    kept. No memory for it: the line is discarded as an over-long one."""

    def __init__(self, max_len=MAX_LINE, small_len=_SMALL_LINE):
        self._max = max_len
        self._small = bytearray(small_len if small_len < max_len else max_len)
        self._buf = self._small
        self._n = 0
        self._overflow = False
        self.rx_ms = 0  # tick of the last byte (arrived)

    def feed(self, c):
        """Take one byte; FEED_LINE when a line is complete, FEED_OVERFLOW when one was too long, else 0.
        Ctrl-A and Ctrl-C drop the partial line (0: nothing to report)."""
        if c == _CTRL_A or c == _CTRL_C:
            self.drop()
            return _FEED_NONE
        if c == _LF:
            if self._overflow:
                self._overflow = False
                self._n = 0
                self._shrink()
                return FEED_OVERFLOW
            return FEED_LINE
        if c == _CR or self._overflow:
            return _FEED_NONE
        if self._n == len(self._buf) and not self._grow():
            self._overflow = True  # keep discarding until the newline, then report once
            return _FEED_NONE
        self._buf[self._n] = c
        self._n += 1
        return _FEED_NONE

    def _grow(self):
        if len(self._buf) >= self._max:
            return False
        try:
            big = bytearray(self._max)
        except MemoryError:
            return False
        big[: self._n] = self._buf
        self._buf = big
        return True

    def _shrink(self):
        self._buf = self._small

    def pending(self):
        """True while a line has begun (bytes, or an over-long line being discarded)."""
        return self._n > 0 or self._overflow

    def arrived(self, clock, now):
        """A byte comes at tick now: a partial line that waited _IDLE_DROP_MS for it is a killed tool's,
        dropped rather than glued to this one."""
        if self.pending() and clock.ticks_diff(now, self.rx_ms) >= _IDLE_DROP_MS:
            self.drop()
        self.rx_ms = now

    def drop(self):
        """Forget the partial line (its sender went away)."""
        self._n = 0
        self._overflow = False
        self._shrink()

    def take(self):
        """The completed line as bytes; the buffer is ready for the next one."""
        line = bytes(memoryview(self._buf)[: self._n])
        self._n = 0
        self._shrink()
        return line


class Request:
    def __init__(self, req_id, op, args, role, ctr, body, mac):
        self.id = req_id
        self.op = op
        self.args = args
        self.role = role
        self.ctr = ctr
        self.body = body  # exact bytes the MAC covers
        self.mac = mac  # hex string or None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _echo(s):
    return s if len(s) <= _ECHO else s[:_ECHO] + "..."


def check_depth(body, limit=_MAX_DEPTH):
    """Refuse JSON nested deeper than limit before json.loads sees it (no recursion limit there)."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return  # fast path: too few brackets to nest that deep
    depth = 0
    in_str = False
    esc = False
    for c in body:
        if in_str:
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:  # quote
                in_str = False
        elif c == 34:
            in_str = True
        elif c == 123 or c == 91:  # { [
            depth += 1
            if depth > limit:
                raise ProtocolError(E_REQUEST, "JSON nested deeper than %d levels" % limit)
        elif c == 125 or c == 93:  # } ]
            depth -= 1


def parse(line):
    """bytes -> Request, or ProtocolError naming what is wrong. Checks sizes before parsing."""
    if len(line) > MAX_LINE:
        raise ProtocolError(E_FRAME, "line longer than %d bytes" % MAX_LINE)
    tab = line.find(b"\t")
    if tab >= 0:
        body = line[:tab]
        mac = line[tab + 1 :]
    else:
        body = line
        mac = None
    if len(body) > MAX_BODY:
        raise ProtocolError(E_FRAME, "JSON part longer than %d bytes" % MAX_BODY)
    try:
        text = str(body, "utf-8")
        mac_s = None if mac is None else str(mac, "utf-8")
    except UnicodeError:
        raise ProtocolError(E_FRAME, "line is not valid UTF-8")
    if mac_s is not None and (len(mac_s) != 64 or not _is_hex(mac_s)):
        raise ProtocolError(E_FRAME, "MAC after TAB must be 64 hex digits")
    check_depth(body)
    try:
        obj = json.loads(text)
    except ValueError:
        raise ProtocolError(E_JSON, "not valid JSON")
    if not isinstance(obj, dict):
        raise ProtocolError(E_REQUEST, "request must be a JSON object")
    if not _str_keys(obj):
        raise ProtocolError(E_JSON, "not valid JSON (an object member has no string name)")
    for k in obj:
        if k not in _FIELDS:
            raise ProtocolError(E_REQUEST, "unknown field '%s'" % _echo(k))
    req_id = obj.get("id")
    if isinstance(req_id, bool) or not isinstance(req_id, int) or req_id < 0 or req_id > MAX_ID:
        raise ProtocolError(E_REQUEST, "'id' must be an integer 0..%d" % MAX_ID)
    op = obj.get("op")
    if not isinstance(op, str) or not 0 < len(op) <= _MAX_OP_LEN:
        raise ProtocolError(E_REQUEST, "'op' must be a string of 1..%d characters" % _MAX_OP_LEN)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(E_REQUEST, "'args' must be an object")
    for k in args:
        if not 0 < len(k) <= _MAX_OP_LEN:
            raise ProtocolError(E_REQUEST, "argument names must be 1..%d characters" % _MAX_OP_LEN)
    role = obj.get("role")
    if role is not None and (not isinstance(role, str) or not 0 < len(role) <= _MAX_ROLE_LEN):
        raise ProtocolError(E_REQUEST, "'role' must be a string of 1..%d characters" % _MAX_ROLE_LEN)
    ctr = obj.get("ctr")
    if ctr is not None and (not _is_int(ctr) or ctr < 0 or ctr > MAX_CTR):
        raise ProtocolError(E_REQUEST, "'ctr' must be an integer 0..%d" % MAX_CTR)
    return Request(req_id, op, args, role, ctr, body, mac_s)


def _str_keys(v):
    """False if any object in v has a non-string key: MicroPython's json.loads reads {"a":1,5,"b":2}
    as {'a': 1, 5: 'b'} where CPython raises. Depth is bounded by check_depth."""
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str) or not _str_keys(v[k]):
                return False
    elif isinstance(v, list):
        for x in v:
            if not _str_keys(x):
                return False
    return True


def _is_hex(s):
    for ch in s:
        if ch not in "0123456789abcdefABCDEF":
            return False
    return True


def request_id(line):
    """Best-effort id of a rejected line, so the host can match the error to its request."""
    try:
        body = line.split(b"\t", 1)[0]
        if len(line) > MAX_LINE or len(body) > MAX_BODY:
            return None
        check_depth(body)
        obj = json.loads(str(body, "utf-8"))
        rid = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(rid, bool) or not isinstance(rid, int):
            return None
        return rid if 0 <= rid <= MAX_ID else None
    except Exception:  # whatever the line is, the error reply must still go out
        return None


def ok_line(req_id, result):
    return (json.dumps({"id": req_id, "ok": True, "result": result}) + "\n").encode()


def error_line(req_id, code, message):
    return (json.dumps({"id": req_id, "ok": False, "error": {"code": code, "message": message}}) + "\n").encode()


def event_line(name, data):
    d = {"event": name}
    for k in data:
        d[k] = data[k]
    return (json.dumps(d) + "\n").encode()


def _finite(v):
    return v == v and v - v == 0  # NaN fails the first, +-inf the second


def check_args(args, spec):
    """Validate args against spec {name: (type, required)} or {name: (type, required, lo, hi)}.

    Unknown names refused; ints bounded to +-MAX_INT unless a range is given; floats must be finite.
    Returns args unchanged.
    """
    for k in args:
        if k not in spec:
            raise ProtocolError(E_ARGS, "unknown argument '%s'" % _echo(k))
    for k in spec:
        s = spec[k]
        typ, required = s[0], s[1]
        if k not in args:
            if required:
                raise ProtocolError(E_ARGS, "missing argument '%s'" % k)
            continue
        v = args[k]
        if typ is int:
            ok = _is_int(v)
        elif typ is float:
            ok = _is_int(v) or (isinstance(v, float) and _finite(v))
        else:
            ok = isinstance(v, typ)
        if not ok:
            raise ProtocolError(E_ARGS, "argument '%s' has the wrong type" % k)
        if typ is int or typ is float:
            lo, hi = (s[2], s[3]) if len(s) > 2 else (-MAX_INT, MAX_INT)
            if not lo <= v <= hi:
                raise ProtocolError(E_ARGS, "argument '%s' must be in %s..%s" % (k, lo, hi))
    return args


def op_entry(ops, name):
    """(handler, kind) of an op, or (None, READ). A bare handler is a read."""
    e = ops.get(name)
    if e is None:
        return None, READ
    if isinstance(e, tuple):
        return e[0], e[1]
    return e, READ


def _apply(req, handler, out=None):
    """Run a handler; its reply line, or None once the reply was written to out (a read's, streamed)."""
    try:
        r = handler(req.args)
        if out is None:
            return ok_line(req.id, r)
    except ProtocolError as e:
        return error_line(req.id, e.code, e.message)
    except Exception as e:  # a handler bug must not take the control loop down
        return error_line(req.id, E_INTERNAL, "%s in '%s': %s" % (type(e).__name__, req.op, e))
    try:
        return write_ok(out, req.id, r)
    except Exception as e:  # a result json cannot encode: end the torn line, then the error
        out.write("\n")
        return error_line(req.id, E_INTERNAL, "%s in '%s' reply: %s" % (type(e).__name__, req.op, e))


def write_ok(out, req_id, result):
    """Write ok_line(req_id, result) to the stream out piece by piece (json.dump): a large reply (the
    status is ~1.7 KB) needs no reply-sized block of contiguous heap, which a long-running, fragmented
    MicroPython heap may not have although it has the bytes free. Returns None."""
    out.write('{"id": %d, "ok": true, "result": ' % req_id)
    json.dump(result, out)
    out.write("}\n")


def dispatch(line, ops, auth=None, out=None):
    """Handle one request line; always returns one reply line, never raises.

    ops: {op: handler(args) -> result} for reads, {op: (handler, CHANGE)} for changes. A change (marked
    so, or named in the auth permission table) runs only through auth.run(); with no auth it is refused.
    out: a stream (the link's): a read's successful reply is written to it (write_ok) and None
    returned instead. Changes always return their line (auth keeps it for a retry).
    """
    try:
        try:
            req = parse(line)
        except ProtocolError as e:
            return error_line(request_id(line), e.code, e.message)
        handler, kind = op_entry(ops, req.op)
        if handler is None:
            return error_line(req.id, E_UNKNOWN_OP, "unknown op '%s'" % req.op)
        if kind == CHANGE or (auth is not None and auth.guards(req.op)):
            if auth is None:
                return error_line(req.id, E_AUTH_NOKEYS, "'%s' changes the pump: no authenticator" % req.op)
            return auth.run(req, lambda: _apply(req, handler))
        return _apply(req, handler, out)
    except Exception as e:  # a bug here (or MemoryError) must still answer and keep the loop alive
        return error_line(None, E_INTERNAL, "%s while handling a request" % type(e).__name__)
