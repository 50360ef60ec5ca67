"""Signed changes from pumpctl's Client, checked by the real firmware app on a fake board (no board,
no serial port): the bytes the host signs are the bytes the firmware's auth accepts."""

import json

import pytest
import scratch

from fakes import FakePumpBoard
from itpump import app, auth, protocol, pump
from pumpctl import PumpctlError, keys, session
from pumpctl.client import Client, DeviceError
from pumpctl.session import Session

RX = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
      "dose_ng_per_day": 1000000,
      "patient_bolus": {"dose_ng": 50000, "duration_min": 1, "lockout_min": 60, "max_per_day": 4}}
FILL = {"drug": "morphine", "conc_ug_per_ml": 10000, "added_nl": 20000000, "removed_nl": 0}


class AppLink:
    """A Link stand-in: each written line goes to a real itpump App's link; its replies come back.
    `written` keeps every line sent, so a test can prove bad input sent nothing."""

    port = "fake"

    def __init__(self, keystore=None, uid="fake-0001"):
        self.dir = scratch.make("cli")
        if keystore is not None:
            with open(self.dir + "/keys.json", "wb") as f:
                f.write(keystore.device_file())
        self.board = FakePumpBoard(uid=uid)
        self.app = app.App(self.board, root=self.dir + "/")
        self.app.boot()
        self.board.serial.lines()  # the boot event
        self.written = []
        self._out = []
        self.nt = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass  # the test closes it (the app and its files outlive one pumpctl command)

    def write(self, data):
        self.written.append(data)
        self.board.serial.feed(data)
        self.app.poll_link()
        self._out += self.board.serial.lines()

    def readline(self, timeout_s):
        return self._out.pop(0) if self._out else None

    def pending_text(self):
        return b""

    def discard_input(self):
        self._out.clear()

    def run_ms(self, ms):
        c = self.board.clock
        if self.nt is None:
            self.nt = c.ticks_add(c.ticks_ms(), pump.TICK_MS)
        end = c.ticks_add(c.ticks_ms(), ms)
        while c.ticks_diff(end, c.ticks_ms()) > 0:
            self.nt = self.app.step(self.nt)

    def changes(self):
        """The signed lines sent (a TAB before the MAC)."""
        return [w for w in self.written if b"\t" in w]

    def close(self):
        if self.app.log is not None:
            self.app.log.close()
        scratch.clean(self.dir)


@pytest.fixture
def ks(tmp_path):
    return keys.provision("fake-0001", tmp_path)


@pytest.fixture
def link(ks):
    lk = AppLink(ks)
    yield lk
    lk.close()


def test_signed_changes_are_accepted_and_applied(link, ks):
    c = Client(link)
    c.change("refill", FILL, ks)
    r = c.change("program", {"rx": RX}, ks)
    assert r["rx_id"] == 1 and link.app.pump.therapy.drug == "morphine"
    body = json.loads(link.changes()[-1].split(b"\t")[0])
    assert body["role"] == "clinician" and body["ctr"] == 2 and body["op"] == "program"
    assert ks.counters()["clinician"] == 2


def test_session_picks_the_role_per_op(link, ks, tmp_path):
    s = Session(Client(link), keys_root=tmp_path)
    s.change("refill", FILL)
    s.change("program", {"rx": RX})
    assert s.change("patient_bolus")["source"] == "link"
    roles = [json.loads(w.split(b"\t")[0])["role"] for w in link.changes()]
    assert roles == ["clinician", "clinician", "patient"]
    assert s.change("service")["repl"] == "open"  # the service key
    assert json.loads(link.changes()[-1].split(b"\t")[0])["role"] == "service"
    assert link.app.pump.therapy.suspended


def test_session_signs_each_change_with_the_role_the_firmware_permits(link, ks, tmp_path):
    # the role comes from the firmware's auth.PERMISSIONS: the keys op is the service's, not the default
    # clinician's (a host-side copy of the table named only patient_bolus and service)
    for role, ops in auth.PERMISSIONS.items():
        for op in ops:
            assert session.role_for(op) == role, op
    s = Session(Client(link), keys_root=tmp_path)
    same = {r: ks.keys[r].hex() for r in auth.ROLES}  # the keys it has: the keystore stays valid
    assert s.change("keys", {"keys": same})["roles"] == sorted(auth.ROLES)
    assert json.loads(link.changes()[-1].split(b"\t")[0])["role"] == "service"


def test_board_without_keys_says_run_provision(ks):
    lk = AppLink(None)
    try:
        with pytest.raises(DeviceError) as e:
            Client(lk).change("refill", FILL, ks)
        assert e.value.code == "AUTH_NOKEYS" and str(e.value) == "refill: board has no keys: run pumpctl provision"
        assert lk.app.pump.reservoir.volume_nl() == 0
    finally:
        lk.close()


def test_a_keystore_that_is_not_the_boards_is_refused_clearly(link, tmp_path):
    other = keys.provision("fake-0001", tmp_path / "other")
    with pytest.raises(DeviceError) as e:
        Client(link).change("refill", FILL, other)
    msg = str(e.value)
    assert e.value.code == "AUTH_MAC" and "not this board's" in msg and str(other.path) in msg
    assert link.app.pump.reservoir.volume_nl() == 0


def test_a_replayed_counter_is_explained(link, ks, tmp_path):
    c = Client(link)
    c.change("refill", FILL, ks)
    c.change("program", {"rx": RX}, ks)
    # the keystore restored from a backup: its counter is behind the board's
    data = json.loads(ks.path.read_text())
    data["counters"]["clinician"] = 0
    ks.path.write_text(json.dumps(data))
    with pytest.raises(DeviceError, match="older than the board's state") as e:
        c.change("suspend", {"on": True}, ks)
    assert e.value.code == "AUTH_REPLAY" and not link.app.pump.therapy.suspended


def test_the_boards_own_refusals_pass_through(link, ks):
    c = Client(link)
    with pytest.raises(DeviceError) as e:
        c.change("bolus", {"kind": "clinician", "dose_ng": 1000, "duration_min": 1}, ks)
    assert str(e.value) == "bolus: NOT_PROGRAMMED: no prescription programmed"


def test_wrong_role_for_an_op(link, ks):
    with pytest.raises(DeviceError, match="the patient role may not 'refill'"):
        Client(link).change("refill", FILL, ks, role="patient")


def test_no_keystore_for_the_device_is_a_clear_error(link, tmp_path):
    s = Session(Client(link), keys_root=tmp_path / "empty")
    with pytest.raises(PumpctlError, match="provision it first"):
        s.change("refill", FILL)
    assert link.changes() == []


def test_the_client_s_copies_of_firmware_names_match_the_firmware():
    # AUTH_HINTS is keyed by the board's error codes and MAX_ID bounds request ids: both restate
    # firmware/itpump/protocol.py, so a renamed code or a new bound would go unnoticed without this
    from pumpctl import client

    codes = {getattr(protocol, n) for n in dir(protocol) if n.startswith("E_")}
    assert set(client.AUTH_HINTS) <= codes, set(client.AUTH_HINTS) - codes
    assert client.MAX_ID == protocol.MAX_ID
