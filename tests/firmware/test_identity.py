# The device's identity (identity.py): its id from the board's unique id, or made once and kept when the
# board has none or a degenerate one (CPython and micropython). Its keys: test_json_file.py,
# test_store_problems.py; their use on the link: test_auth.py, test_app.py.
import pytest
from test_app import Rig, make

from fakes import FakeBoard
from itpump import app

pytestmark = pytest.mark.micropython


def test_device_id_is_made_once_and_kept_when_the_board_has_none():
    b, a, r = make()
    first = a.identity.device_id
    a.log.close()
    a2 = app.App(FakeBoard(), root=r.dir + "/")
    assert a2.identity.device_id == first and len(first) > 8
    r.close()


class _IdBoard(FakeBoard):
    def __init__(self, uid):
        FakeBoard.__init__(self)
        self.uid = uid

    def unique_id(self):
        return self.uid


def test_a_degenerate_unique_id_gets_a_random_id_made_once_and_kept():
    good = Rig(_IdBoard(b"\xe6\x60\x38\xb7\x13\x3a\x7a\x2f"))
    assert good.a.identity.device_id == "fake-e66038b7133a7a2f"
    good.close()
    ids = []
    for uid in (bytes(8), bytes(8), b"\xff" * 8, b""):  # the emulator's is all zeros
        r = Rig(_IdBoard(uid))
        first = r.a.identity.device_id
        assert first.startswith("fake-") and len(first) == 17 and first != "fake-" + "00" * 6, first
        r.a.log.close()
        r.b.uid = b"\x12" * 8
        again = app.App(r.b, root=r.dir + "/")  # made once, used from then on
        assert again.identity.device_id == first
        again.log.close()
        ids.append(first)
        r.close()
    assert len(set(ids)) == 4  # no two such boards share an id
