# Protocol framing and parsing (CPython and micropython).
import json

from fakes import raises
from itpump import protocol as P


def feed_all(reader, data):
    out = []
    for c in data:
        st = reader.feed(c)
        if st == P.FEED_LINE:
            out.append(reader.take())
        elif st == P.FEED_OVERFLOW:
            out.append(None)
    return out


def test_line_reader_splits_lines_and_drops_cr():
    r = P.LineReader(64)
    assert feed_all(r, b'{"a":1}\r\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']


def test_line_reader_reports_overflow_once_then_recovers():
    r = P.LineReader(8)
    got = feed_all(r, b"0123456789abcdef\nok\n")
    assert got == [None, b"ok"]


def test_line_reader_exact_capacity_is_not_overflow():
    r = P.LineReader(4)
    assert feed_all(r, b"abcd\n") == [b"abcd"]


def test_parse_valid_request():
    req = P.parse(b'{"id":7,"op":"status","args":{"x":1}}')
    assert req.id == 7 and req.op == "status" and req.args == {"x": 1}
    assert req.role is None and req.ctr is None and req.mac is None


def test_parse_with_mac_keeps_exact_body():
    mac = "ab" * 32
    line = b'{"id":1,"op":"bolus","role":"clinician","ctr":5}\t' + mac.encode()
    req = P.parse(line)
    assert req.body == b'{"id":1,"op":"bolus","role":"clinician","ctr":5}'
    assert req.mac == mac and req.ctr == 5 and req.role == "clinician"


def test_parse_rejects_with_distinct_codes():
    cases = [
        (b"\xff\xfe", P.E_FRAME),
        (b"{not json", P.E_JSON),
        (b"[1,2]", P.E_REQUEST),
        (b'{"id":1}', P.E_REQUEST),
        (b'{"op":"x"}', P.E_REQUEST),
        (b'{"id":-1,"op":"x"}', P.E_REQUEST),
        (b'{"id":true,"op":"x"}', P.E_REQUEST),
        (b'{"id":1.5,"op":"x"}', P.E_REQUEST),
        (b'{"id":1,"op":""}', P.E_REQUEST),
        (b'{"id":1,"op":"x","args":[]}', P.E_REQUEST),
        (b'{"id":1,"op":"x","extra":0}', P.E_REQUEST),
        (b'{"id":1,"op":"x","ctr":-3}', P.E_REQUEST),
        (b'{"id":1,"op":"x"}\tnothex', P.E_FRAME),
    ]
    for line, code in cases:
        e = raises(P.ProtocolError, P.parse, line)
        assert e.code == code, (line, e.code)


def test_dispatch_replies_are_json_with_id():
    ops = {"ping": lambda a: {"pong": True}}
    ok = json.loads(P.dispatch(b'{"id":3,"op":"ping"}', ops))
    assert ok == {"id": 3, "ok": True, "result": {"pong": True}}
    bad = json.loads(P.dispatch(b'{"id":4,"op":"nope"}', ops))
    assert bad["id"] == 4 and not bad["ok"] and bad["error"]["code"] == P.E_UNKNOWN_OP
    junk = json.loads(P.dispatch(b"garbage", ops))
    assert junk["id"] is None and junk["error"]["code"] == P.E_JSON


def test_dispatch_contains_handler_failures():
    def boom(args):
        raise ZeroDivisionError("x")

    r = json.loads(P.dispatch(b'{"id":9,"op":"boom"}', {"boom": boom}))
    assert r["id"] == 9 and r["error"]["code"] == P.E_INTERNAL and "ZeroDivisionError" in r["error"]["message"]


def test_check_args_types_and_unknowns():
    spec = {"volume_ul": (float, True), "note": (str, False)}
    assert P.check_args({"volume_ul": 5}, spec) == {"volume_ul": 5}
    assert raises(P.ProtocolError, P.check_args, {}, spec).code == P.E_ARGS
    assert raises(P.ProtocolError, P.check_args, {"volume_ul": "5"}, spec).code == P.E_ARGS
    assert raises(P.ProtocolError, P.check_args, {"volume_ul": True}, spec).code == P.E_ARGS
    assert raises(P.ProtocolError, P.check_args, {"volume_ul": 1, "x": 1}, spec).code == P.E_ARGS


def test_event_line():
    ev = json.loads(P.event_line("boot", {"fw": "1"}))
    assert ev == {"event": "boot", "fw": "1"}
