# Link protocol: one JSON object per line over the USB serial (see DESIGN.md).
#   request  {"id":7,"op":"status","args":{}}            (changes add "role","ctr" and TAB + HMAC hex)
#   reply    {"id":7,"ok":true,"result":{...}}  or  {"id":7,"ok":false,"error":{"code":..,"message":..}}
#   event    {"event":"boot",...}                          (unsolicited)
# Every reject is a well-formed error reply; nothing here changes pump state.
import json

try:
    from micropython import const
except ImportError:  # CPython: host tools and unit tests import this module too
    def const(x):
        return x

MAX_LINE = const(2048)  # bytes per request line, newline excluded
MAX_ID = const(0x3FFFFFFF)  # ids stay small ints on the rp2 (31-bit)
MAX_OP_LEN = const(32)

# Error codes (stable: host tools and tests match on them)
E_FRAME = "FRAME"  # over-long line, not UTF-8, bad MAC field
E_JSON = "JSON"  # not parseable JSON
E_REQUEST = "REQUEST"  # JSON but not a valid request object
E_UNKNOWN_OP = "UNKNOWN_OP"
E_ARGS = "ARGS"  # op known, arguments wrong
E_INTERNAL = "INTERNAL"  # handler failed; state unchanged

FEED_NONE = const(0)
FEED_LINE = const(1)
FEED_OVERFLOW = const(2)

_LF = const(10)
_CR = const(13)
_TAB = const(9)

_FIELDS = ("id", "op", "args", "role", "ctr")


class ProtocolError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class LineReader:
    """Assembles bytes into lines in a fixed buffer: no allocation per byte, bounded memory."""

    def __init__(self, max_len=MAX_LINE):
        self._buf = bytearray(max_len)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._overflow = False

    def feed(self, c):
        """Take one byte; FEED_LINE when a line is complete, FEED_OVERFLOW when one was too long."""
        if c == _LF:
            if self._overflow:
                self._overflow = False
                self._n = 0
                return FEED_OVERFLOW
            return FEED_LINE
        if c == _CR or self._overflow:
            return FEED_NONE
        if self._n == len(self._buf):
            self._overflow = True  # keep discarding until the newline, then report once
            return FEED_NONE
        self._buf[self._n] = c
        self._n += 1
        return FEED_NONE

    def take(self):
        """The completed line as bytes; the buffer is ready for the next one."""
        line = bytes(self._mv[: self._n])
        self._n = 0
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


def parse(line):
    """bytes -> Request, or ProtocolError. Returns (request, id) where id is known even on error."""
    tab = line.find(b"\t")
    if tab >= 0:
        body = line[:tab]
        mac = line[tab + 1 :]
    else:
        body = line
        mac = None
    try:
        text = str(body, "utf-8")
        mac_s = None if mac is None else str(mac, "utf-8")
    except UnicodeError:
        raise ProtocolError(E_FRAME, "line is not valid UTF-8")
    try:
        obj = json.loads(text)
    except ValueError:
        raise ProtocolError(E_JSON, "not valid JSON")
    if not isinstance(obj, dict):
        raise ProtocolError(E_REQUEST, "request must be a JSON object")
    for k in obj:
        if k not in _FIELDS:
            raise ProtocolError(E_REQUEST, "unknown field '%s'" % k)
    req_id = obj.get("id")
    if not _is_int(req_id) or req_id < 0 or req_id > MAX_ID:
        raise ProtocolError(E_REQUEST, "'id' must be an integer 0..%d" % MAX_ID)
    op = obj.get("op")
    if not isinstance(op, str) or not 0 < len(op) <= MAX_OP_LEN:
        raise ProtocolError(E_REQUEST, "'op' must be a string of 1..%d characters" % MAX_OP_LEN)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(E_REQUEST, "'args' must be an object")
    role = obj.get("role")
    if role is not None and not isinstance(role, str):
        raise ProtocolError(E_REQUEST, "'role' must be a string")
    ctr = obj.get("ctr")
    if ctr is not None and (not _is_int(ctr) or ctr < 0):
        raise ProtocolError(E_REQUEST, "'ctr' must be a non-negative integer")
    if mac_s is not None and (len(mac_s) != 64 or not _is_hex(mac_s)):
        raise ProtocolError(E_FRAME, "MAC after TAB must be 64 hex digits")
    return Request(req_id, op, args, role, ctr, body, mac_s)


def _is_hex(s):
    for ch in s:
        if ch not in "0123456789abcdefABCDEF":
            return False
    return True


def request_id(line):
    """Best-effort id of a rejected line, so the host can match the error to its request."""
    try:
        obj = json.loads(str(line.split(b"\t", 1)[0], "utf-8"))
        rid = obj.get("id") if isinstance(obj, dict) else None
        return rid if _is_int(rid) and 0 <= rid <= MAX_ID else None
    except (ValueError, UnicodeError):
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


def check_args(args, spec):
    """Validate args against spec {name: (type, required)}; unknown names refused. Returns args."""
    for k in args:
        if k not in spec:
            raise ProtocolError(E_ARGS, "unknown argument '%s'" % k)
    for k in spec:
        typ, required = spec[k]
        if k not in args:
            if required:
                raise ProtocolError(E_ARGS, "missing argument '%s'" % k)
            continue
        v = args[k]
        if typ is int:
            ok = _is_int(v)
        elif typ is float:
            ok = (_is_int(v) or isinstance(v, float))
        else:
            ok = isinstance(v, typ)
        if not ok:
            raise ProtocolError(E_ARGS, "argument '%s' has the wrong type" % k)
    return args


def dispatch(line, ops):
    """Handle one request line against {op: handler(args) -> result}; always returns a reply line."""
    try:
        req = parse(line)
    except ProtocolError as e:
        return error_line(request_id(line), e.code, e.message)
    handler = ops.get(req.op)
    if handler is None:
        return error_line(req.id, E_UNKNOWN_OP, "unknown op '%s'" % req.op)
    try:
        return ok_line(req.id, handler(req.args))
    except ProtocolError as e:
        return error_line(req.id, e.code, e.message)
    except Exception as e:  # a handler bug must not take the control loop down
        return error_line(req.id, E_INTERNAL, "%s in '%s': %s" % (type(e).__name__, req.op, e))
