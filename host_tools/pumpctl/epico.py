"""The emulated Pico: official rp2 MicroPython on rp2040js (host_tools/epico/runner.js), bridged to a pty,
with the sim's plant turning the pump head from the STEP edges. One state directory per board (flash.bin
kept across power cycles). Design: docs/epico.md; the controller: docs/pumpctl.md."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import REPO_ROOT, PumpctlError, vboard

RUNNER_DIR = REPO_ROOT / "host_tools" / "epico"
RUNNER = RUNNER_DIR / "runner.js"
BOOTROM_NAME = "bootrom-rp2040-b1.bin"
DEFAULT_DIR = Path(os.environ.get("ITPUMP_EPICO_DIR", REPO_ROOT / ".epico" / "default"))
OUT_BUFFER_MAX = 1 << 20

# The rpi_pico board's analog front end (firmware/itpump/hal/rp2board.py DEFAULT_CALIBRATION):
# pressure sensor 0.5 V at 0 Pa, 50,000 Pa/V, through a x2/3 divider; battery through 1:2; 12-bit
# ADC on a 3.3 V reference. ADC0 = GPIO26 = pressure, ADC1 = GPIO27 = battery (carrier.py).
VREF_MV = 3300.0
PRESSURE_ZERO_MV = 500.0
PRESSURE_PA_PER_V = 50_000.0
PRESSURE_DIVIDER = 2.0 / 3.0
BATTERY_DIVIDER = 0.5
ADC_PRESSURE = 0
ADC_BATTERY = 1
DIAG_PIN = 7
DEFAULT_BATTERY_MV = 3900
PL_PER_STEP = 50_000


def find_bootrom(path: str | os.PathLike | None = None) -> Path | None:
    """--bootrom, else $ITPUMP_BOOTROM, else the shared/rp2/ copy beside the repository (never in it)."""
    from .fwbuild import shared_rp2

    if path:
        return Path(path)
    if os.environ.get("ITPUMP_BOOTROM"):
        return Path(os.environ["ITPUMP_BOOTROM"])
    p = shared_rp2(BOOTROM_NAME)
    return p if p.exists() else None


def node_exe() -> str | None:
    return shutil.which("node")


def ensure_node_modules() -> None:
    """npm ci in host_tools/epico when node_modules is missing (rp2040js pinned by package-lock.json)."""
    if (RUNNER_DIR / "node_modules" / "rp2040js").exists():
        return
    npm = shutil.which("npm")
    if not npm:
        raise PumpctlError("npm not found: install Node.js (>= 18) to run the emulated Pico")
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=RUNNER_DIR, capture_output=True, text=True)
    if r.returncode != 0:
        raise PumpctlError(f"npm ci in {RUNNER_DIR} failed: {r.stderr.strip().splitlines()[-1:]}")


def missing_prereqs(bootrom: str | None = None) -> list[str]:
    """What the emulated Pico needs and this machine lacks (empty: it can run)."""
    missing = []
    if not node_exe():
        missing.append("node (Node.js >= 18)")
    if find_bootrom(bootrom) is None or not find_bootrom(bootrom).exists():
        missing.append(f"the RP2040 bootrom ({BOOTROM_NAME}: --bootrom or $ITPUMP_BOOTROM)")
    return missing


def pressure_code(pa: float) -> int:
    """12-bit ADC0 code for a line pressure through the rpi_pico sensor and divider."""
    pin_mv = (PRESSURE_ZERO_MV + pa * 1000.0 / PRESSURE_PA_PER_V) * PRESSURE_DIVIDER
    return max(0, min(4095, int(pin_mv * 4095.0 / VREF_MV + 0.5)))


def battery_code(mv: float) -> int:
    return max(0, min(4095, int(mv * BATTERY_DIVIDER * 4095.0 / VREF_MV + 0.5)))


class State(vboard.State):
    """Files of one emulated Pico's state directory: the virtual board's, plus its control socket."""

    noun = "emulated Pico"
    serve_module = "pumpctl.epico"

    def __init__(self, directory: Path | str | None = None):
        super().__init__(directory or DEFAULT_DIR)
        self.sock_file = self.dir / "ctl.sock"

    def run_files(self) -> tuple[Path, ...]:
        return (*super().run_files(), self.sock_file)


def start(directory=None, firmware: str | os.PathLike | None = None, bootrom: str | None = None,
          speed: float = 1.0, seed: int = 1, erase: bool = False, timeout_s: float = 30.0) -> str:
    """Power the emulated Pico on in the background; returns its serial port path.

    firmware: a .uf2 or .bin written into the flash first, as a BOOTSEL drop does (the filesystem
    stays); erase: start from blank flash."""
    st = State(directory)
    st.check_free(speed)
    missing = missing_prereqs(bootrom)
    if missing:
        raise PumpctlError("emulated Pico cannot run: missing " + ", ".join(missing))
    if firmware is not None and not Path(firmware).exists():
        raise PumpctlError(f"firmware image {firmware} not found")
    ensure_node_modules()
    st.dir.mkdir(parents=True, exist_ok=True)
    if erase:
        st.flash_file.unlink(missing_ok=True)
    if firmware is None and not st.flash_file.exists():
        raise PumpctlError(f"no flash image in {st.dir}: give --firmware (a MicroPython .uf2 or .bin)")
    st.config_file.write_text(json.dumps({
        "speed": speed, "seed": seed, "bootrom": str(find_bootrom(bootrom)),
        "firmware": str(Path(firmware).resolve()) if firmware else None}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "host_tools"), env.get("PYTHONPATH", "")])
    return st.launch(timeout_s, env)


def stop(directory=None, timeout_s: float = 15.0) -> bool:
    """Power off (the flash file is written first); False if none was running."""
    return State(directory).stop(timeout_s)


def status(directory=None) -> dict:
    return State(directory).status("bootrom")


def command(directory=None, req: dict | None = None, timeout_s: float = 10.0) -> dict:
    """One request to a running controller: {"op": "set", "battery_mv": 3700, "diag": 0|1|None},
    {"op": "fault", "name": "occlusion", "k": ...}, {"op": "clear"}, {"op": "counts"},
    {"op": "watch", "text": "OCCLUSION"} (counts then gives the chip ms the device first sent it),
    {"op": "hang"} (the core stops; the watchdog runs on), {"op": "speed", "speed": 8} (cap on chip
    time per wall time: an idle chip may run ahead of the host), {"op": "stats"} (the runner's
    figures; "profile": 1 starts a profile, then each stats reply carries cycles by PC of each 100 ms
    window's largest burst and of all busy time, and "trap": ADDR counts the calls of the function at
    ADDR, e.g. gc_alloc, by size and return addresses; "big": CYCLES keeps apart each window whose
    largest burst reaches CYCLES: its chip ms, cycles and cycles by PC; bench/chip_profile.py). Returns
    the reply dict; PumpctlError on an error reply."""
    st = State(directory)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(st.sock_file))
        s.sendall(json.dumps(req or {}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except OSError as e:
        raise PumpctlError(f"emulated Pico in {st.dir} not answering: {e}") from e
    finally:
        s.close()
    r = json.loads(buf or b"{}")
    if "error" in r:
        raise PumpctlError(r["error"])
    return r


# --------------------------------------------------------------------------------------------
# The controller (runs detached, in its own process)


def _plant_module():
    rom = str(REPO_ROOT / "boards" / "sim" / "rom")
    if rom not in sys.path:
        sys.path.insert(0, rom)
    import plant  # boards/sim/rom/plant.py: the sim's world, same constants

    return plant


class Controller(vboard.PtyBridge):
    def __init__(self, directory: Path):
        super().__init__(State(directory))
        cfg = self.st.config()
        self.speed = float(cfg.get("speed", 1.0))
        self.bootrom = cfg.get("bootrom")
        self.firmware = cfg.get("firmware")
        plant = _plant_module()
        # The pump head built to the rpi_pico calibration's volume per step (50 nL, rp2board.py), so the
        # firmware's volumes and the plant's agree as on a calibrated unit; the rest is the sim's plant.
        self.plant = plant.Plant(seed=int(cfg.get("seed", 1)), pl_per_step=PL_PER_STEP)
        self.ctl_buf = b""
        self.ctl_out = bytearray()
        self.t_ns = 0
        self.steps = 0  # STEP rising edges while EN was active: the pump head's input
        self.edges = 0  # every STEP rising edge
        self.resets: list[str] = []
        self.battery_mv = DEFAULT_BATTERY_MV
        self.diag = 0  # the driver's DIAG output: low (no stall) unless set
        self.codes = {}
        self.reading_pa: float | None = None  # the sensor reading behind the last ADC0 code
        self.last_step_ns = 0  # end of the 10 ms report window holding the latest counted edge
        self.watches: dict[str, float | None] = {}  # text -> chip ns when the device first sent it
        self.out_tail = b""
        self.waiting_stats: list[socket.socket] = []
        self.clients: dict[socket.socket, bytes] = {}

    def serve(self) -> None:
        port = self.open_port()
        self.st.sock_file.unlink(missing_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.st.sock_file))
        self.server.listen(8)
        self.server.setblocking(False)
        first = True
        try:
            while not self.stopping:
                self.run_runner(first, port)
                first = False
                if not self.stopping:
                    time.sleep(0.5)
        finally:
            self.server.close()
            self.close_port()
            self.log("controller down")

    def run_runner(self, first: bool, port: str) -> None:
        node = node_exe()
        cmd = [node, str(RUNNER), "--bootrom", str(self.bootrom), "--flash", str(self.st.flash_file),
               "--speed", repr(self.speed)]
        if first and self.firmware:
            cmd += ["--firmware", self.firmware]
        parent, child = socket.socketpair()
        cmd += ["--ctl-fd", str(child.fileno())]
        self.log("power on: " + " ".join(cmd[1:]))
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0,
            pass_fds=(child.fileno(),), start_new_session=True, cwd=str(RUNNER_DIR),
        )
        child.close()
        self.ctl = parent
        parent.setblocking(False)
        self.proc = proc
        out_fd, in_fd = proc.stdout.fileno(), proc.stdin.fileno()
        os.set_blocking(in_fd, False)
        self.to_device.clear()
        self.codes = {}
        self._send_inputs()
        if first:
            self.st.pid_file.write_text(str(os.getpid()))
            self.st.port_file.write_text(port)
            self.log(f"controller up on {port}, speed {self.speed}")
        open_out = True
        while not self.stopping and open_out:
            rlist = [self.master, out_fd, parent, self.server, *self.clients]
            wlist = []
            if self.to_device:
                wlist.append(in_fd)
            if self.to_host:
                wlist.append(self.master)
            if self.ctl_out:
                wlist.append(parent)
            r, w, _ = select.select(rlist, wlist, [], 0.5)
            if self.master in r:
                self._read_host()
            if out_fd in r and not self._read_device(out_fd):
                open_out = False
            if parent in r:
                self._read_ctl()
            if self.server in r:
                with contextlib.suppress(OSError):
                    conn, _ = self.server.accept()
                    conn.setblocking(False)
                    self.clients[conn] = b""
            for c in list(self.clients):
                if c in r:
                    self._read_client(c)
            if in_fd in w:
                self._write_device(in_fd)
            if parent in w:
                with contextlib.suppress(BlockingIOError):
                    n = parent.send(self.ctl_out)
                    del self.ctl_out[:n]
            if self.master in w:
                self._flush_host()
        # power off: the runner writes its flash file on SIGTERM
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        parent.close()
        self.log(f"runner exited ({proc.returncode})")

    # -- the plant loop ------------------------------------------------------------------------
    def _ctl_send(self, obj: dict) -> None:
        self.ctl_out += json.dumps(obj).encode() + b"\n"

    def _set_adc(self, ch: int, code: int) -> None:
        if self.codes.get(ch) != code:
            self.codes[ch] = code
            self._ctl_send({"adc": [ch, code]})

    def _send_inputs(self) -> None:
        self._update_pressure()
        self._set_adc(ADC_BATTERY, battery_code(self.battery_mv))
        self._ctl_send({"pin": [DIAG_PIN, self.diag]})

    def _update_pressure(self) -> None:
        try:
            pa = self.plant.pressure_pa()  # the plant's sensor: its offset, gain, drift and noise
            self.reading_pa = pa
        except ValueError:
            code = 0 if self.plant.faults.get("sensor", {}).get("mode") != "short" else 4095
        else:
            code = pressure_code(pa)
        self._set_adc(ADC_PRESSURE, code)

    def _read_ctl(self) -> None:
        try:
            data = self.ctl.recv(65536)
        except BlockingIOError:
            return
        if not data:
            return
        self.ctl_buf += data
        while b"\n" in self.ctl_buf:
            line, _, self.ctl_buf = self.ctl_buf.partition(b"\n")
            if line.strip():
                self._on_event(json.loads(line))

    def _on_event(self, ev: dict) -> None:
        kind = ev.get("ev")
        if kind == "tick":
            t = ev["t_ns"]
            dt_ms = max(0.0, (t - self.t_ns) / 1e6)
            self.t_ns = t
            self.steps += ev["steps"]
            self.edges += ev["edges"]
            if ev["steps"]:
                self.last_step_ns = t
            self.plant.step(dt_ms, ev["steps"])
            self._update_pressure()
            diag = 1 if self.plant.motor_diag() else self.diag
            if diag != getattr(self, "_diag_sent", None):
                self._diag_sent = diag
                self._ctl_send({"pin": [DIAG_PIN, diag]})
        elif kind == "stats":
            for c in self.waiting_stats:
                self._reply(c, {**ev, "steps": self.steps, "edges": self.edges})
            self.waiting_stats = []
        elif kind in ("reset", "boot", "usb"):
            if kind == "reset":
                self.resets.append(ev["cause"])
            self.log(f"chip {kind}: {ev}")

    # -- command socket ------------------------------------------------------------------------
    def _read_client(self, c: socket.socket) -> None:
        try:
            data = c.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.clients.pop(c, None)
            c.close()
            return
        buf = self.clients[c] + data
        self.clients[c] = buf
        if b"\n" in buf:
            line = buf.partition(b"\n")[0]
            try:
                self._handle(c, json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                self._reply(c, {"error": f"bad request: {e}"})

    def _reply(self, c: socket.socket, obj: dict) -> None:
        with contextlib.suppress(OSError):
            c.setblocking(True)
            c.sendall(json.dumps(obj).encode() + b"\n")
        self.clients.pop(c, None)
        c.close()

    def _handle(self, c: socket.socket, req: dict) -> None:
        op = req.get("op")
        p = self.plant
        if op == "set":
            if "battery_mv" in req:
                self.battery_mv = int(req["battery_mv"])
                self._set_adc(ADC_BATTERY, battery_code(self.battery_mv))
            if "diag" in req:
                self.diag = req["diag"]
                self._diag_sent = self.diag
                self._ctl_send({"pin": [DIAG_PIN, self.diag]})
            self._reply(c, {"ok": True})
        elif op == "fault":
            kw = {k: v for k, v in req.items() if k not in ("op", "name")}
            p.inject(req["name"], **kw)
            self._reply(c, {"ok": True})
        elif op == "clear":
            p.clear(req.get("name"))
            self._reply(c, {"ok": True})
        elif op == "speed":
            self.speed = float(req["speed"])
            if not self.speed > 0:
                raise ValueError("speed must be > 0")
            self._ctl_send({"speed": self.speed})
            self._reply(c, {"ok": True})
        elif op == "hang":
            self._ctl_send({"hang": 1})
            self._reply(c, {"ok": True})
        elif op == "watch":
            self.watches[str(req["text"])] = None
            self._reply(c, {"ok": True})
        elif op == "counts":
            self._reply(c, {"steps": self.steps, "edges": self.edges, "chip_ms": self.t_ns / 1e6,
                            "last_step_ms": self.last_step_ns / 1e6,
                            "watches": {k: (None if v is None else v / 1e6) for k, v in self.watches.items()},
                            "pressure_pa": p.true_pressure_pa(), "reading_pa": self.reading_pa,
                            "pumped_ul": p.pumped_ul,
                            "resets": self.resets, "adc": self.codes})
        elif op == "stats":
            self.waiting_stats.append(c)
            self._ctl_send({"stats": 1, **({"clear_bursts": 1} if req.get("clear_bursts") else {}),
                            **({"profile": req["profile"], "trap": req.get("trap", 0), "big": req.get("big", 0)}
                               if "profile" in req else {})})
        else:
            self._reply(c, {"error": f"unknown op {op!r} (set, fault, clear, counts, watch, hang, stats)"})

    def _queue_host(self, data: bytes) -> None:
        if self.watches:
            text = self.out_tail + data
            for w, seen in self.watches.items():
                if seen is None and w.encode() in text:
                    self.watches[w] = self.t_ns
            self.out_tail = text[-256:]
        super()._queue_host(data)


def _main(argv: list[str]) -> int:
    return vboard.serve_main(argv, Controller, "pumpctl.epico")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
