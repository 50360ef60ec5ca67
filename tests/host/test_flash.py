"""pumpctl flash without a board: check first, soft reset first, skip what matches, frozen images, the
.mpy cache, the batched writes (replayed here), the board-side helpers (under the real micropython)."""

import base64
import contextlib
import hashlib
import os
import pty
import select
import subprocess
import threading
import time
import types

import pytest

from pumpctl import PumpctlError, cli, flash, mpr, vboard

PICO = {"platform": "rp2", "machine": "Raspberry Pi Pico with RP2040", "version": (1, 28, 0), "mpy": 0x0A06,
        "sim": False}
SIM = {"platform": "linux", "machine": "linux [GCC 12] version", "version": (1, 28, 0), "mpy": 0x0A06, "sim": True}


class FakeDevice:
    """A board at its raw REPL: a dict filesystem and a log of what was done to it."""

    ident = PICO
    full = False  # a heap too full to run the few lines that ask what the board is, until a soft reset
    image: dict | None = None  # itpump_frozen.FILES
    fs: dict[str, bytes] = {}
    log: list = []

    def __init__(self, port):
        self.port = port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def identity(self):
        self.log.append("identity")
        if self.full:
            raise PumpctlError("board error: MemoryError: memory allocation failed")
        return dict(self.ident)

    def is_sim(self):
        return self.ident["sim"] and not self.full  # mpr.Device.is_sim: a board too full to say is not

    def unload_firmware(self):
        self.log.append("unload")

    def soft_reset_raw(self):
        self.log.append("soft_reset_raw")
        FakeDevice.full = False

    def frozen(self):
        return self.image

    def scan(self, dirs, files, sizes):
        out = {}
        for p, d in self.fs.items():
            if any(p.startswith(x + "/") for x in dirs) or p in files:
                out[p] = (len(d), hashlib.sha256(d).hexdigest() if sizes.get(p) == len(d) else None)
        for p in list(out):
            parts = p.split("/")
            for i in range(2, len(parts)):
                out.setdefault("/".join(parts[:i]), (-1, None))
        out.pop("/itpump", None)  # a walk lists what is inside
        return out

    def write_files(self, files, mkdirs, progress):
        self.log.append(("write", [p for p, _ in files], list(mkdirs)))
        for p, d in files:
            self.fs[p] = d
            progress(p, len(d))

    def hashes(self, paths):
        return [hashlib.sha256(self.fs[p]).hexdigest() for p in paths]

    def remove(self, files, dirs):
        self.log.append(("remove", sorted(files)))
        for p in files:
            del self.fs[p]

    def soft_reset(self):
        self.log.append("restart")


@pytest.fixture(scope="module")
def mpy_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mpy-cache")  # shared: each test compiling afresh costs 2 s


@pytest.fixture
def dev(monkeypatch, mpy_cache):
    monkeypatch.setenv("ITPUMP_CACHE_DIR", str(mpy_cache))
    monkeypatch.setattr(mpr, "Device", FakeDevice)
    FakeDevice.ident, FakeDevice.image, FakeDevice.fs, FakeDevice.log, FakeDevice.full = PICO, None, {}, [], False
    return FakeDevice


def _sources(board):
    return {f.source: f.data for f in flash.plan(board)}


def test_a_refused_board_is_not_reset_or_written(dev):
    with pytest.raises(PumpctlError, match="board mismatch: --board rpi_pico2 is for RP2350"):
        flash.flash("/dev/x", "rpi_pico2")
    assert dev.log == ["identity"]


def test_rp2_board_found_by_itself_reset_first_gets_mpy(dev):
    s = flash.flash("/dev/x")
    assert s["board"] == "rpi_pico" and s["mode"] == "mpy" and s["boot_budget_s"] == 6.0
    assert dev.log[:2] == ["identity", "soft_reset_raw"]  # a clean heap before the first write
    written = dev.log[2][1]
    assert "/itpump/app.mpy" in written and "/board.mpy" in written and "/main.py" in written
    assert dev.fs["/itpump/app.mpy"][:2] == b"M\x06" and dev.log[-1] == "restart"
    assert "/itpump" in dev.log[2][2] and "/itpump/hal" in dev.log[2][2]  # folders made, parents first


def test_unchanged_files_are_skipped_and_the_other_flavour_removed(dev):
    flash.flash("/dev/x", "rpi_pico", mpy=False)
    dev.log.clear()
    s = flash.flash("/dev/x", "rpi_pico", mpy=False)
    assert s["files"] == 0 and s["skipped"] == len(_sources("rpi_pico")) and s["removed"] == []
    dev.fs["/itpump/app.py"] += b"# edited\n"
    s = flash.flash("/dev/x", "rpi_pico", mpy=False)
    assert s["files"] == 1 and dev.log[-3][1] == ["/itpump/app.py"]
    s = flash.flash("/dev/x", "rpi_pico", mpy=True)
    assert "/itpump/app.py" in s["removed"] and "/itpump/app.mpy" in dev.fs and "/itpump/app.py" not in dev.fs


def test_sim_is_unloaded_not_reset_and_gets_py(dev):
    dev.ident = SIM
    s = flash.flash("/dev/x")
    assert s["board"] == "sim" and s["mode"] == "py" and "unload" in dev.log and "soft_reset_raw" not in dev.log


@pytest.mark.parametrize("ident", [SIM, PICO], ids=["sim", "pico"])
def test_a_board_too_full_to_say_what_it_is_is_reset_then_asked(dev, ident):
    # the sim's soft reset restarts its interpreter and with it the firmware: unloaded after the reset
    dev.ident, dev.full = ident, True
    s = flash.flash("/dev/x")
    assert s["board"] == ("sim" if ident["sim"] else "rpi_pico")
    done = [x for x in dev.log if isinstance(x, str)]
    assert done[:4] == ["identity", "soft_reset_raw", "identity", "unload" if ident["sim"] else "restart"]


def test_frozen_image_gets_only_what_is_not_frozen_and_loses_shadowing_copies(dev):
    dev.image = {k: hashlib.sha256(v).hexdigest() for k, v in _sources("rpi_pico").items()}
    dev.fs = {"/itpump/app.mpy": b"M\x06old", "/itpump/hal/led.mpy": b"M", "/main.py": b"old",
              "/board.mpy": b"M", "/keys.json": b"{}", "/log/ev1.log": b"x"}
    s = flash.flash("/dev/x", "rpi_pico")
    assert s["mode"] == "frozen" and s["files"] == 0 and s["boot_budget_s"] == 4.0
    assert sorted(dev.fs) == ["/keys.json", "/log/ev1.log"]  # data stays; nothing shadows the frozen modules
    assert s["removed"] and not any(isinstance(e, tuple) and e[0] == "write" and e[1] for e in dev.log)


def test_frozen_image_of_other_sources_gets_the_whole_firmware_over_it(dev):
    image = {k: hashlib.sha256(v).hexdigest() for k, v in _sources("rpi_pico").items()}
    image["itpump/pump.py"] = "0" * 64
    dev.image = image
    s = flash.flash("/dev/x", "rpi_pico")
    assert s["mode"] == "mpy" and s["shadowed"] == ["itpump/pump.py"]
    assert "/itpump/pump.mpy" in dev.fs and "/itpump/app.mpy" in dev.fs and "/main.py" not in dev.fs
    del image["itpump/pump.py"]  # a module the image lacks: it differs as well
    assert flash.flash("/dev/x", "rpi_pico")["shadowed"] == ["itpump/pump.py"]
    image["main.py"] = "1" * 64
    dev.fs, dev.log[:] = {}, []
    with pytest.raises(PumpctlError, match="frozen main.py differs"):
        flash.flash("/dev/x", "rpi_pico")
    assert not any(isinstance(e, tuple) for e in dev.log)  # refused before writing


def test_py_asked_on_a_frozen_image_copies_the_sources(dev):
    dev.image = {k: hashlib.sha256(v).hexdigest() for k, v in _sources("rpi_pico").items()}
    s = flash.flash("/dev/x", "rpi_pico", mpy=False)
    assert s["mode"] == "py" and "/itpump/app.py" in dev.fs and s["boot_budget_s"] == 15.0


def test_status_of_a_running_firmware_is_checked_before_touching_it():
    flash.check_status("sim", {"board": "sim", "platform": "linux"})
    flash.check_status("rpi_pico", {"board": "rpi_pico", "platform": "rp2"})
    with pytest.raises(PumpctlError, match="not an rp2 board"):
        flash.check_status("rpi_pico", {"board": "sim", "platform": "linux"})
    with pytest.raises(PumpctlError, match="not the virtual board"):
        flash.check_status("sim", {"board": "rpi_pico2", "platform": "rp2"})
    with pytest.raises(PumpctlError, match="board mismatch: --board rpi_pico2 is for RP2350"):
        flash.check_status("rpi_pico2", {"board": "rpi_pico", "platform": "rp2"})
    assert flash.board_from_status({"board": "rpi_pico2"}) == "rpi_pico2"
    assert flash.board_from_status({"board": "someone_elses"}) is None


def _cli(monkeypatch, probe, summary=None):
    calls = {}
    monkeypatch.setattr(flash, "probe", lambda port, timeout_s: probe)

    def fake_flash(port, board, mpy=None, restart=True, progress=None):
        calls["flash"] = (board, mpy)
        return dict({"files": 3, "skipped": 0, "bytes": 10, "seconds": 0.1, "removed": [], "board": board or "x",
                     "mode": "mpy", "shadowed": [], "boot_budget_s": 6.0}, **(summary or {}))

    class FakeLink:
        def __init__(self, port):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *e):
            pass

    def wait_ready(self, timeout_s):
        calls["wait"] = timeout_s
        return {"fw": "0.1.0", "board": "x"}

    monkeypatch.setattr(flash, "flash", fake_flash)
    monkeypatch.setattr("pumpctl.link.Link", FakeLink)
    monkeypatch.setattr("pumpctl.client.Client.wait_ready", wait_ready)
    return calls


def test_cli_refuses_a_wrong_board_from_its_status_without_flashing(monkeypatch, capsys):
    calls = _cli(monkeypatch, flash.Probe("firmware", {"board": "sim", "platform": "linux"}))
    assert cli.main(["flash", "--port", "/dev/x", "--board", "rpi_pico", "--quiet"]) != 0
    assert "flash" not in calls and "not an rp2 board" in capsys.readouterr().err


def test_cli_takes_the_board_from_the_firmware_and_waits_timeout_plus_boot(monkeypatch, capsys):
    calls = _cli(monkeypatch, flash.Probe("firmware", {"board": "sim", "platform": "linux"}))
    assert cli.main(["flash", "--port", "/dev/x", "--quiet", "--timeout", "2.5"]) == 0
    assert calls["flash"] == ("sim", None) and calls["wait"] == 2.5 + 6.0
    calls = _cli(monkeypatch, flash.Probe("repl"), {"boot_budget_s": 15.0})
    assert cli.main(["flash", "--port", "/dev/x", "--quiet", "--py"]) == 0
    assert calls["flash"] == (None, False) and calls["wait"] == 3.0 + 15.0


def test_restart_waits_timeout_plus_the_boot_of_what_is_installed(monkeypatch):
    calls = _cli(monkeypatch, flash.Probe("repl"))  # restart asks first: nothing runs
    monkeypatch.setattr(flash, "restart", lambda port: flash.BOOT_BUDGET_S["frozen"])
    assert cli.main(["restart", "--port", "/dev/x", "--timeout", "1"]) == 0
    assert calls["wait"] == 1.0 + 4.0


@pytest.mark.timeout(20)
def test_probe_recognises_the_repl_at_once():
    """A REPL echoes what it is sent: the probe returns then, not after its 60 s timeout."""
    master, slave = pty.openpty()
    import tty

    tty.setraw(slave)
    name = os.ttyname(slave)

    def repl():
        got = b""
        while b"\n" not in got:
            got += os.read(master, 100)
        os.write(master, got.replace(b"\n", b"\r\n") + b"{'id': 1, 'op': 'status'}\r\n>>> ")

    th = threading.Thread(target=repl, daemon=True)
    th.start()
    try:
        assert flash.probe(name, timeout_s=60).state == "repl"
    finally:
        th.join(5)
        os.close(master)
        os.close(slave)


@contextlib.contextmanager
def scripted_board(kind):
    """A board's REPL on a pty, driven by control characters: Ctrl-A enters the raw REPL; Ctrl-D there
    soft-resets as `kind` does: "pico" comes back to the raw REPL, "sim" restarts its interpreter into
    main.py (which Ctrl-C stops at the friendly REPL), "mute" says OK and nothing more."""
    master, slave = pty.openpty()
    import tty

    tty.setraw(slave)
    stop = threading.Event()

    def serve():
        running = False  # main.py runs
        while not stop.is_set():
            if not select.select([master], [], [], 0.05)[0]:
                continue
            for c in os.read(master, 256):
                out = b""
                if c == 3 and running:
                    running, out = False, b"KeyboardInterrupt\r\nMicroPython v1.28.0; linux\r\n>>> "
                elif c == 1:
                    out = b"\r\nraw REPL; CTRL-B to exit\r\n>"
                elif c == 4:
                    out = {"pico": b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>",
                           "sim": b'OK\r\nMPY: soft reboot\r\n{"event": "boot"}\n', "mute": b"OK\r\n"}[kind]
                    running = kind == "sim"
                if out:
                    os.write(master, out)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        th.join(5)
        os.close(master)
        os.close(slave)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["pico", "sim"])
def test_a_soft_reset_comes_back_to_the_raw_repl(kind):
    with scripted_board(kind) as port, mpr.Device(port) as dev:
        dev.soft_reset_raw(timeout_s=5)
        assert dev.t.serial.read(1) == b">" and dev.t.serial.in_waiting == 0  # the raw REPL's prompt


@pytest.mark.timeout(30)
def test_a_board_that_does_not_come_back_from_a_soft_reset_is_not_waited_for_forever():
    with scripted_board("mute") as port, mpr.Device(port) as dev:
        t0 = time.monotonic()
        with pytest.raises(PumpctlError, match="did not come back to its REPL after a soft reset"):
            dev.soft_reset_raw(timeout_s=1)
        assert time.monotonic() - t0 < 5


def test_mpy_cache_compiles_once_per_source_name_and_target(monkeypatch, tmp_path):
    monkeypatch.setenv("ITPUMP_CACHE_DIR", str(tmp_path))
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    runs = []
    real = subprocess.run

    def counting(cmd, **kw):
        runs.append(cmd)
        return real(cmd, **kw)

    monkeypatch.setattr(flash.subprocess, "run", counting)
    a = flash.compile_mpy(src, "armv6m", "m.mpy")
    assert flash.compile_mpy(src, "armv6m", "m.mpy") == a and len(runs) == 1
    flash.compile_mpy(src, "armv7emsp", "m.mpy")
    flash.compile_mpy(src, "armv6m", "other.mpy")
    src.write_text("x = 2\n")
    assert flash.compile_mpy(src, "armv6m", "m.mpy") != a
    assert len(runs) == 4


class _Transport:
    """Runs the raw-REPL programs the Device sends, in CPython, against a dict filesystem."""

    def __init__(self):
        self.fs = {}
        self.programs = []
        files = self.fs

        class F:
            def __init__(self, p):
                self.p = p
                files[p] = b""

            def write(self, d):
                files[self.p] += d

            def close(self):
                pass

        self.ns = {"open": lambda p, mode: F(p), "_D": lambda p: None, "_a": base64.b64decode}

    def exec(self, code):
        self.programs.append(code)
        exec(code, self.ns)
        return b""


def test_batched_writes_rebuild_every_file_exactly():
    d = mpr.Device.__new__(mpr.Device)
    d.t, d._helpers = _Transport(), True
    files = [("/a.py", b"print('hi')\n"), ("/big.mpy", bytes(range(256)) * 40), ("/empty.py", b""),
             ("/itpump/q.py", b"s = '\\\\x00 \"quoted\"'\n" * 300)]
    seen = []
    d.write_files(files, ["/itpump"], lambda p, n: seen.append((p, n)))
    assert d.t.fs == dict(files)
    assert all(len(p) <= mpr.BATCH_BYTES + 200 for p in d.t.programs)  # a program stays small on the board
    assert 3 <= len(d.t.programs) <= 8  # several files share a program; big ones span several
    assert ("/big.mpy", 10240) in seen and ("/empty.py", 0) in seen
    assert "_a(" in "".join(d.t.programs)  # binary goes as base64, text as it is


def test_board_helpers_scan_and_hash_under_real_micropython(tmp_path):
    exe = vboard.micropython_exe()
    (tmp_path / "itpump" / "hal").mkdir(parents=True)
    (tmp_path / "itpump" / "a.py").write_bytes(b"a" * 3000)
    (tmp_path / "itpump" / "hal" / "b.py").write_bytes(b"bb")
    (tmp_path / "main.py").write_bytes(b"m")
    d = mpr.Device.__new__(mpr.Device)
    progs = []
    d.t = types.SimpleNamespace(exec=lambda code: progs.append(code) or b"")
    d._helpers = False
    with pytest.raises(SyntaxError):  # _value parses the (empty) output: capture the program instead
        d.scan(["itpump"], ["main.py", "board.py"], {"itpump/a.py": 3000, "itpump/hal/b.py": 5})
    code = progs[0] + "\n" + progs[1]
    r = subprocess.run([exe, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
    got = eval(r.stdout)
    assert got == {"itpump/a.py": (3000, hashlib.sha256(b"a" * 3000).hexdigest()),
                   "itpump/hal/b.py": (2, None),  # another size: not hashed, it differs anyway
                   "itpump/hal": (-1, None), "main.py": (1, None)}


def test_make_flash_lets_the_board_say_what_it_is():
    root = flash.REPO_ROOT

    def dry(*args):
        r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(root), "flash", *args],
                           capture_output=True, text=True)
        return [ln.split() for ln in r.stdout.splitlines() if "pumpctl flash" in ln][0][1:]

    assert dry("PORT=/dev/ttyACM0") == ["flash", "--port", "/dev/ttyACM0"]
    assert dry("BOARD=rpi_pico2") == ["flash", "--board", "rpi_pico2"]


def test_frozen_listing_runs_on_a_fresh_board_under_real_micropython(tmp_path):
    """After a soft reset nothing is imported: the program brings what it needs."""
    (tmp_path / "itpump_frozen.py").write_text("FILES = {'itpump/app.py': 'ab'}\n")
    d = mpr.Device.__new__(mpr.Device)
    progs = []
    d.t = types.SimpleNamespace(exec=lambda code: progs.append(code) or b"None")
    d.frozen()
    for cwd, want in ((tmp_path, {"itpump/app.py": "ab"}), (tmp_path / "none", None)):
        cwd.mkdir(exist_ok=True)
        r = subprocess.run([vboard.micropython_exe(), "-c", progs[0]], capture_output=True, text=True, cwd=cwd,
                           timeout=30)
        assert r.returncode == 0 and eval(r.stdout) == want, r.stderr
