"""Host keystore (pumpctl.keys) and its agreement with the firmware's auth, under both interpreters."""

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from fakes import MemCounters
from itpump import auth, protocol
from pumpctl import keys
from pumpctl.vboard import micropython_exe

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def ticks_ms(self):
        return 0

    def ticks_diff(self, a, b):
        return a - b


def board_for(ks):
    """A firmware authenticator holding the keys the keystore exports for the board."""
    applied = []
    au = auth.Authenticator(FakeClock(), MemCounters(), keys=auth.keys_from_json(ks.device_file().decode()))
    ops = {"status": lambda a: {}, "bolus": (lambda a: applied.append(a) or {"ok": 1}, protocol.CHANGE)}
    return au, ops, applied


def test_roles_match_firmware():
    assert keys.ROLES == auth.ROLES and keys.MAX_CTR == protocol.MAX_CTR and keys.KEY_LEN == auth.KEY_LEN


def test_provision_creates_private_files_with_random_keys(tmp_path):
    root = tmp_path / "keys"
    ks = keys.provision("pico-e6614c31", root)
    p = keys.path("pico-e6614c31", root)
    assert ks.path == p and p.exists()
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    data = json.loads(p.read_text())
    assert data["counters"] == {"patient": 0, "clinician": 0, "service": 0}
    assert sorted(ks.keys) == sorted(keys.ROLES)
    assert len({ks.keys[r] for r in keys.ROLES}) == 3 and all(len(k) == 32 for k in ks.keys.values())
    other = keys.provision("pico-other", root)
    assert not set(other.keys.values()) & set(ks.keys.values())


def test_provision_refuses_to_replace_keys_unless_forced(tmp_path):
    ks = keys.provision("dev1", tmp_path)
    with pytest.raises(keys.KeystoreError, match="refusing to replace"):
        keys.provision("dev1", tmp_path)
    assert keys.load("dev1", tmp_path).keys == ks.keys
    new = keys.provision("dev1", tmp_path, force=True)
    assert new.keys != ks.keys


def test_default_path_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.ENV, raising=False)
    monkeypatch.delenv(keys.ENV_DIR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    import platformdirs

    assert keys.path("d1") == platformdirs.user_data_path("itpump", appauthor=False) / "keys" / "d1.json"
    assert keys.path("d1") == tmp_path / "data" / "itpump" / "keys" / "d1.json"  # Linux: the XDG data dir
    monkeypatch.setenv(keys.ENV, str(tmp_path / "elsewhere"))
    assert keys.path("d1") == tmp_path / "elsewhere" / "d1.json"
    keys.provision("d1")
    assert (tmp_path / "elsewhere" / "d1.json").exists()
    monkeypatch.setenv(keys.ENV_DIR, str(tmp_path / "dir"))  # the documented name wins
    assert keys.path("d1") == tmp_path / "dir" / "d1.json"


def test_a_keystore_at_the_old_location_is_still_found(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.ENV, raising=False)
    monkeypatch.delenv(keys.ENV_DIR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    old = keys.provision("d9", tmp_path / "home" / ".config" / "itpump" / "keys")
    assert keys.path("d9") == old.path and keys.load("d9").keys == old.keys
    assert keys.load("d9").next_counter("clinician") == 1  # used in place, counters and all
    new = keys.provision("d8")  # new keystores go to the data dir
    assert new.path == tmp_path / "data" / "itpump" / "keys" / "d8.json"


def test_the_lock_is_an_os_lock_that_other_processes_wait_for(tmp_path):
    import multiprocessing

    ks = keys.provision("d7", tmp_path)
    with keys._locked(ks.path):  # noqa: SLF001
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=_take_counter, args=(str(tmp_path),))
        p.start()
        p.join(1.0)
        assert p.is_alive()  # waiting for our lock
        assert ks.counters()["clinician"] == 0
    p.join(20)
    assert p.exitcode == 0 and ks.counters()["clinician"] == 1


def _take_counter(root):
    keys.load("d7", root).next_counter("clinician")


def test_staged_keystore_is_adopted_in_place(tmp_path):
    old = keys.provision("d2", tmp_path)
    staged = keys.provision("d2", tmp_path / ".staging", force=True)
    assert keys.load("d2", tmp_path).keys == old.keys  # staging leaves the current keys alone
    ks = keys.adopt(staged, tmp_path)
    assert ks.path == keys.path("d2", tmp_path) and keys.load("d2", tmp_path).keys == staged.keys != old.keys
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600 and not staged.path.exists()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 65, "a b"])
def test_unsafe_device_ids_refused(tmp_path, bad):
    with pytest.raises(keys.KeystoreError):
        keys.path(bad, tmp_path)


def test_load_refuses_a_keystore_others_can_read(tmp_path):
    keys.provision("d", tmp_path)
    os.chmod(keys.path("d", tmp_path), 0o644)
    with pytest.raises(keys.KeystoreError, match="readable by others"):
        keys.load("d", tmp_path)


def test_load_missing_or_corrupt(tmp_path):
    with pytest.raises(keys.KeystoreError, match="provision it first"):
        keys.load("nope", tmp_path)
    keys.provision("d", tmp_path)
    p = keys.path("d", tmp_path)
    data = json.loads(p.read_text())
    data["keys"]["clinician"] = "abcd"
    p.write_text(json.dumps(data))
    with pytest.raises(keys.KeystoreError, match="not 32 bytes"):
        keys.load("d", tmp_path)


def test_counters_are_monotonic_and_on_disk_before_use(tmp_path):
    ks = keys.provision("d", tmp_path)
    assert [ks.next_counter("clinician") for _ in range(3)] == [1, 2, 3]
    assert json.loads(ks.path.read_text())["counters"]["clinician"] == 3
    # a restart (new process: reload from disk) continues, never reuses
    ks2 = keys.load("d", tmp_path)
    assert ks2.next_counter("clinician") == 4 and ks2.next_counter("patient") == 1
    assert ks.next_counter("clinician") == 5  # the old handle re-reads the file too
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600


def test_concurrent_counters_never_repeat(tmp_path):
    keys.provision("d", tmp_path)
    got = []

    def worker():
        ks = keys.load("d", tmp_path)
        for _ in range(25):
            got.append(ks.next_counter("service"))

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(got) == list(range(1, 101))


def test_sign_checks_body_and_produces_a_line():
    key = bytes(range(32))
    body = b'{"id":1,"op":"bolus","role":"clinician","ctr":3}'
    line = keys.sign("clinician", key, body)
    assert line.endswith(b"\n") and line.count(b"\t") == 1
    assert line[:-1].split(b"\t")[1] == auth.hmac_hex(key, body).encode()  # host hmac == firmware HMAC
    for bad_body in (b'{"id":1,"op":"bolus","role":"patient","ctr":3}', b'{"id":1,"op":"bolus","ctr":3}',
                     b'{"id":1,"op":"bolus","role":"clinician"}', b'{"role":"clinician","ctr":0}',
                     b"not json", b'{"role":"clinician","ctr":1}\t'):
        with pytest.raises(keys.KeystoreError):
            keys.sign("clinician", key, bad_body)
    with pytest.raises(keys.KeystoreError):
        keys.sign("clinician", b"short", body)


def test_signed_lines_accepted_by_firmware_auth(tmp_path):
    ks = keys.provision("d", tmp_path)
    au, ops, applied = board_for(ks)
    for i in range(1, 4):
        line = ks.signed_line(i, "bolus", {"volume_ul": 10 * i}, "clinician")
        r = json.loads(protocol.dispatch(line.rstrip(b"\n"), ops, au))
        assert r["ok"], r
    assert applied == [{"volume_ul": 10}, {"volume_ul": 20}, {"volume_ul": 30}]
    # a patient frame may not bolus as clinician; a stale counter is a replay
    line = ks.signed_line(9, "bolus", None, "patient")
    assert json.loads(protocol.dispatch(line.rstrip(b"\n"), ops, au))["error"]["code"] == protocol.E_AUTH_FORBIDDEN
    stale = keys.sign("clinician", ks.keys["clinician"], b'{"id":10,"op":"bolus","role":"clinician","ctr":2}')
    assert json.loads(protocol.dispatch(stale.rstrip(b"\n"), ops, au))["error"]["code"] == protocol.E_AUTH_REPLAY


def test_device_file_round_trips_through_firmware(tmp_path):
    ks = keys.provision("d", tmp_path)
    assert auth.keys_from_json(ks.device_file().decode()) == ks.keys
    assert auth.keys_from_json(ks.device_file(["patient"]).decode()) == {"patient": ks.keys["patient"]}
    with pytest.raises(keys.KeystoreError):
        keys.provision("e", tmp_path, roles=("clinician",)).device_file(["service"])


MPY_CHECK = r"""
import sys, json
sys.path.insert(0, ROOT + "/firmware")
from itpump import auth, protocol
class C:
    def __init__(self): self.d = {}
    def load(self): return dict(self.d)
    def save(self, d): self.d = dict(d)
class Clk:
    def ticks_ms(self): return 0
    def ticks_diff(self, a, b): return a - b
au = auth.Authenticator(Clk(), C(), keys=auth.keys_from_json(KEYFILE))
done = []
ops = {"bolus": (lambda a: done.append(a) or {"n": len(done)}, protocol.CHANGE),
       "patient_bolus": (lambda a: done.append(a) or {"n": len(done)}, protocol.CHANGE)}
for line in LINES:
    print(protocol.dispatch(line, ops, au).decode().strip())
"""


def test_host_signatures_verify_under_real_micropython(tmp_path):
    ks = keys.provision("d", tmp_path)
    lines = [ks.signed_line(1, "bolus", {"volume_ul": 5, "note": "\u00e9\u4e2d"}, "clinician"),
             ks.signed_line(2, "patient_bolus", None, "patient"),
             ks.signed_line(3, "bolus", None, "clinician")]
    forged = lines[2][:-65] + b"0" * 64 + b"\n"
    lines = [x.rstrip(b"\n") for x in lines + [forged]]
    script = (f"ROOT = {str(ROOT)!r}\nKEYFILE = {ks.device_file().decode()!r}\nLINES = {lines!r}\n"
              + MPY_CHECK)
    f = tmp_path / "check.py"
    f.write_text(script)
    r = subprocess.run([micropython_exe(), str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    replies = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["ok"] for x in replies] == [True, True, True, False]
    assert replies[3]["error"]["code"] == protocol.E_AUTH_MAC


def test_reprovision_then_install_keys_on_the_board(tmp_path):
    ks = keys.provision("d", tmp_path)
    au, ops, applied = board_for(ks)
    for i in range(3):
        assert json.loads(protocol.dispatch(ks.signed_line(i, "bolus", None, "clinician").rstrip(), ops, au))["ok"]
    new = keys.provision("d", tmp_path, force=True)  # host counters restart at 0 with the new keys
    au.set_keys(auth.keys_from_json(new.device_file().decode()))  # the board's keys op: counters follow
    line = new.signed_line(9, "bolus", None, "clinician")
    assert b'"ctr":1' in line and json.loads(protocol.dispatch(line.rstrip(), ops, au))["ok"]
    old = ks.signed_line(10, "bolus", None, "clinician")  # a frame under the old key
    assert json.loads(protocol.dispatch(old.rstrip(), ops, au))["error"]["code"] == protocol.E_AUTH_MAC
