# STORE_PROBLEM records: "slot" is the state slot that failed (0, 1) or one of eventlog.STORE_* for what
# else could not be read or written; the values are stable (stored logs carry them). CPython and micropython.
import struct

import pytest
import scratch
from test_app import Rig, programmed

from fakes import FakePumpBoard
from itpump import eventlog

pytestmark = pytest.mark.micropython


def problems(r):
    return [struct.unpack("<IB", d) for c, d in r.events() if c == eventlog.STORE_PROBLEM]


def test_the_other_sources_are_apart_from_the_slots():
    assert eventlog.CODES[eventlog.STORE_PROBLEM][1:] == ("<IB", ("generation", "slot"))
    others = (eventlog.STORE_GUARD, eventlog.STORE_KEYS, eventlog.STORE_AUTH, eventlog.STORE_STATE)
    assert others == (252, 253, 254, 255)


def _corrupt_state_booted():
    """A delivering pump whose two state slots are then damaged, booted again on the same flash."""
    r = programmed()
    r.a.log.close()
    for name in ("state.0", "state.1"):
        try:
            with open(r.dir + "/data/state/" + name, "r+b") as f:
                f.seek(30)
                f.write(b"XXXX")
        except OSError:
            pass
    r2 = Rig(FakePumpBoard(), d=r.dir)
    r2.a.boot()
    return r2


def test_each_corrupt_state_slot_is_logged_by_its_number():
    r2 = _corrupt_state_booted()
    assert problems(r2) == [(0, 0), (0, 1)]
    r2.close()


def test_a_corrupt_state_resumes_no_basal():
    r2 = _corrupt_state_booted()
    st = r2.read("status")
    assert st["therapy"] is None and not st["running"]
    assert eventlog.STORE_PROBLEM in r2.codes()
    r2.close()


def test_invalid_keys_are_logged_as_the_keys():
    d = scratch.make("keys")
    with open(d + "/keys.json", "w") as f:
        f.write('{"v": 1, "keys": {"patient": "zz"}}')
    r = Rig(d=d)
    r.a.boot()
    assert r.a.identity.keys_state.startswith("invalid")
    assert problems(r) == [(0, eventlog.STORE_KEYS)]
    r.close()
