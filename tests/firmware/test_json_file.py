# store.write_json is the firmware's one atomic JSON file writer (temp file, closed, renamed over): the
# link's counters, the supervisor's record and the keys op write through it (CPython and micropython).
import os

import pytest
import scratch
from test_app import KEYS, Rig

from itpump import auth, store, supervisor

pytestmark = pytest.mark.micropython

NEW = {r: bytes(range(120 + i, 152 + i)) for i, r in enumerate(("patient", "clinician", "service"))}


def _hex(b):
    return "".join("%02x" % x for x in b)


def test_it_replaces_the_file_whole_and_leaves_no_temp():
    d = scratch.make("json")
    try:
        store.write_json(d + "/r.json", {"a": 1})
        store.write_json(d + "/r.json", {"b": [2, 3]})
        with open(d + "/r.json") as f:
            assert f.read() == '{"b": [2, 3]}'
        assert os.listdir(d) == ["r.json"]
    finally:
        scratch.clean(d)


def test_counters_record_and_keys_write_through_it():
    r = Rig()
    r.a.boot()
    written = []
    real = store.write_json

    def spy(path, obj):
        written.append(path.rsplit("/", 1)[-1])
        real(path, obj)

    store.write_json = spy
    try:
        auth.FileCounters(r.dir + "/ctr.json").save({"clinician": 3})
        supervisor.JsonRecord(r.dir + "/sup.json").save({"boots": 1})
        r.ok("keys", {"keys": {k: _hex(NEW[k]) for k in NEW}}, role="service")
    finally:
        store.write_json = real
        r.close()
    assert written[:2] == ["ctr.json", "sup.json"] and "keys.json" in written, written


def test_keys_that_cannot_be_written_are_not_installed():
    r = Rig()
    r.a.boot()
    os.remove(r.dir + "/keys.json")
    os.mkdir(r.dir + "/keys.json")  # the rename over it fails, as a full or failing flash would
    try:
        rep = r.change("keys", {"keys": {k: _hex(NEW[k]) for k in NEW}}, role="service")
        assert not rep["ok"], rep
        # still the old keys: a change signed with the new one fails its MAC, the old one passes it
        new = r.send(r.line("time_set", {"unix_s": 1780000000}, key=NEW["clinician"]))
        assert not new["ok"] and new["error"]["code"] == auth.protocol.E_AUTH_MAC, new
        old = r.send(r.line("time_set", {"unix_s": 1780000000}, key=KEYS["clinician"]))
        assert old["ok"], old
    finally:
        r.close()
