# Composition root: wires the parts from the board object, boots (keys, store, event log) and runs the
# control loop, ticks and checkpoints. Imports nothing from machine: every device comes from the board.
# The delivery pipeline is pump.py, the link ops are ops.py; files on the device: docs/persistence.md.
import gc
import json
import os
import sys

from micropython import const

import itpump

# Every module is imported (compiled, when flashed as source) here, one at a time with a collection
# after each, in dependency order: compiles interleaved with each other's garbage and the app's
# long-lived objects fragment the heap until a small block cannot be found (seen on the sim's heap).
for _m in itpump.MODULES:
    __import__("itpump." + _m)
    gc.collect()

from itpump import (  # noqa: E402
    VERSION,
    alarms,
    eventlog,
    halts,
    ops,
    ops_bolus,
    power,
    protocol,
    pump,
    store,
    supervisor,
)
from itpump.identity import Identity  # noqa: E402
from itpump.journal import Journal, err_text  # noqa: E402
from itpump.reservoir import Reservoir  # noqa: E402
from itpump.therapy import Therapy  # noqa: E402

TICK_MS = pump.TICK_MS  # control tick period
# Watchdog: inside rp2's 8388 ms maximum; long enough for the virtual board's fast clock, whose ticks
# may come 5 s of virtual time apart. A hung loop issues no new moves (a move lasts <= 90 ms), so the
# motor is not driven while the watchdog waits.
WDT_TIMEOUT_MS = const(8000)
# Supervised tasks and their check-in deadlines (ms): missing one stops the feed (the board resets).
_TASK_TICK_MS = const(6000)
_TASK_LINK_MS = const(6000)
_TASK_HOUSE_MS = const(7000)
# Accounting, reserve, checkpoint, battery: once a second of clock time, outside the tick (by time, not
# by tick count: the virtual board's fast-forward runs ticks up to 5 s apart).
_HOUSEKEEP_MS = const(1000)
_DELIVERY_LOG_S = const(3600)  # a DELIVERY record every hour
# Heap collected once a minute: a function whose frame is over 11 words takes it from the heap at every
# call (freed on return), and garbage left between collections makes each search further (on rp2 the
# tick grew from 2.7 % to 6.5 % of its 100 ms over an hour). docs/epico.md: the tick on the chip.
_GC_S = const(60)
_MAX_LINES_PER_POLL = const(4)  # requests handled per pass of the loop before the tick's turn
REPL_LOCKED_LINE = (b'{"event": "repl_locked", "message": "itpump: therapy is running, the REPL is locked '
                    b'(Ctrl-C/Ctrl-A ignored): pumpctl service (service key) suspends it and opens the REPL"}\r\n')
E_SIM_ONLY = "SIM_ONLY"
SIM_OPS = ("sim.clock", "sim.advance", "sim.hang", "sim.reset", "sim.fault")
STATE_V = 1
DEFAULT_PL_PER_STEP = 20000


class Uptime:
    """Uptime from accumulated tick deltas: survives the 2**30 tick wrap, stays in small ints."""

    def __init__(self, clock):
        self._clock = clock
        self._last = clock.ticks_ms()
        self.s = 0
        self._ms = 0

    def update(self):
        now = self._clock.ticks_ms()
        ms = self._ms + self._clock.ticks_diff(now, self._last)
        self._last = now
        if ms >= 1000:
            self.s += ms // 1000
            ms %= 1000
        self._ms = ms

    def ms(self):
        return self.s * 1000 + self._ms


def _mkdir(p):
    try:
        os.stat(p)
    except OSError:
        os.mkdir(p)


class App:
    def __init__(self, board, root="/"):
        self.board = board
        self.clock = board.clock
        self.serial = board.serial
        # the link's raw stream, if the board gives one: read replies are written to it piecewise
        self._stream = getattr(board.serial, "stream", None)
        self.root = root
        self.reader = protocol.LineReader()
        self.rx_ms = 0  # tick of the last byte received
        self.repl_told = None  # tick the REPL lock was last explained
        self.uptime = Uptime(board.clock)
        self.ticks = 0
        self.wdt = getattr(board, "wdt", None)
        self.button = getattr(board, "button", None)
        self.booted = False
        self.wall = eventlog.WallClock(board.clock)
        self.time_source = "uptime"  # "host" once time_set, "restored" from the last checkpoint
        self.tz_min = 0
        self.rx_id = 0
        self.boot_count = 0
        self.store_failures = 0
        self.store_error = None  # the last checkpoint failure, for status
        self.booked_boot_nl = 0  # booked as delivered at this boot without confirmed pulses (reserve)
        self.booked_total_nl = 0  # the same over every boot (persisted)
        self._next_delivery_log_s = _DELIVERY_LOG_S
        self._next_gc_s = _GC_S
        self._last_tod = 0
        self.alarms = alarms.AlarmManager(board.clock, getattr(board, "buzzer", None), getattr(board, "led", None))
        self.sup = supervisor.Supervisor(self.wdt if self.wdt is not None else _NoWdt(), board.clock,
                                         _JsonRecord(root + "data/sup.json"), timeout_ms=WDT_TIMEOUT_MS)
        self.t_tick = self.sup.add_task("tick", _TASK_TICK_MS)
        self.t_link = self.sup.add_task("link", _TASK_LINK_MS)
        self.t_house = self.sup.add_task("housekeeping", _TASK_HOUSE_MS)
        self.boot_info = None
        self._late_seen = False
        self._house_t = board.clock.ticks_ms()
        self.battery = None  # power.Watch, on a board with a battery sensor
        self.serviced = False  # delivery suspended by the service op (a restart resumes it)
        self.cal_problem = None
        # storage first: everything after may log
        self.policy = store.CheckpointPolicy(board.clock)
        _mkdir(root + "data")
        self.journal = Journal(root + "data/log", board.clock, self.wall, self.send)
        self.log = self.journal.log
        self.event = self.journal.event
        self.alarms.add_listener(self.journal.on_alarm)
        cal = getattr(board, "calibration", None) or {}
        try:
            self.pump = pump.Pump(board, self.alarms, cal.get("pl_per_step", DEFAULT_PL_PER_STEP), self.log, cal)
        except ValueError as e:  # a bad line calibration: no detector, so no delivery until a clinician acks
            self.cal_problem = str(e)
            self.pump = pump.Pump(board, self.alarms, cal.get("pl_per_step", DEFAULT_PL_PER_STEP), self.log)
            self.pump.occ = None
            self.pump.pressure = None
        if self.cal_problem is not None:
            halts.hold_internal(self.pump)
        sensor = getattr(board, "battery", None)
        if sensor is not None:
            try:
                self.battery = power.Watch(sensor, power.from_calibration(cal), self.pump, self.alarms)
            except ValueError as e:
                self.cal_problem = str(e)
                self.alarms.raise_alarm(alarms.INTERNAL)
        self.identity = Identity(board, root, self.journal)
        self.auth = self.identity.auth
        self.store = store.Store(root + "data/state")
        self._restore()
        self.ops = ops.table(self)
        sim_ops = getattr(board, "sim_ops", None)
        if sim_ops is not None:
            for name, fn in sim_ops().items():
                self.ops[name] = _board_op(fn)
        else:  # a real board refuses fault injection by name, not as an unknown op
            for name in SIM_OPS:
                self.ops[name] = _sim_only(name, board.name)

    # -- boot ---------------------------------------------------------------------
    def _restore(self):
        """Newest valid state from the store; delivered totals never under-counted (store rule)."""
        p = self.pump
        try:
            state, gen, problems = self.store.load()
        except Exception:
            gc.collect()  # a MemoryError at boot: once more on a collected heap before giving up
            try:
                state, gen, problems = self.store.load()
            except Exception as e:
                state, gen, problems = None, 0, ["load failed: %s" % type(e).__name__]
        for msg in problems:
            slot = 0 if msg.startswith("state.0") else 1 if msg.startswith("state.1") else eventlog.STORE_STATE
            self.event(eventlog.STORE_PROBLEM, gen, slot)
        self.state_problem = None
        if state is not None:
            try:
                self._apply_state(state)
            except Exception as e:
                # invalid state: no basal resumes; what was delivered stays counted where it could be read
                self.state_problem = err_text(e)
                self.event(eventlog.STORE_PROBLEM, gen, eventlog.STORE_STATE)
                p.therapy = None
                halts.hold_internal(p)
        elif problems:
            self.state_problem = "; ".join(problems)
        self.boot_count += 1
        # supervisor: reset cause against our own marker, boot-loop guard (persisted count)
        info = self.sup.boot(self.board.reset_cause())
        self.boot_info = info
        for code in info["alarms"]:
            self.alarms.raise_alarm(code)
        if info["safe_mode"]:
            halts.safe_mode(p, info["wdt_resets"])

    def _apply_state(self, st):
        if st.get("v") != STATE_V:
            raise ValueError("state version %r" % st.get("v"))
        p = self.pump
        self.boot_count = st.get("boot_count", 0)
        cal = st.get("cal") or {}
        if "pl_per_step" in cal:
            p.set_pl_per_step(cal["pl_per_step"])
        if p.idx is not None:
            p.idx.restore(st.get("rotor"))  # the index magnets' placement, learnt before the restart
        if st.get("reservoir"):
            p.reservoir = Reservoir.from_dict(st["reservoir"])
        rx = st.get("rx")
        if rx is not None:
            th = Therapy.from_dict(rx, st.get("therapy") or {}, self.uptime.s)
            if st.get("svc"):  # suspended by the service op: a restart (after flashing) resumes it
                th.suspend(False)
                p.log_safety(pump.S_RESUME, 0, 0)
            p.therapy = th
            self.rx_id = st.get("rx_id", 0)
        delivered = st.get("delivered_nl", 0)
        mark = self.store.mark
        recovered = store.recovered_delivered_nl(st, mark)
        if self.store.mark_bad and p.therapy is not None:  # the mark's value is lost: book what it could reach
            recovered = store.reserve_mark(recovered, p.reserve_rate(), store.RESERVE_BOUND_MS)
        unrecorded_nl = recovered - delivered  # maybe given after the checkpoint: counted as given
        known = mark[0] if mark is not None and mark[0] > delivered else delivered  # confirmed, last known
        self.booked_total_nl = st.get("booked_nl", 0)
        if recovered > known:
            self.booked_boot_nl = recovered - known
            self.booked_total_nl += self.booked_boot_nl
            self.event(eventlog.RESERVE_BOOKED, self.booked_boot_nl, self.booked_total_nl)
        p.delivered_nl = recovered
        p.reserved_nl = recovered
        p.total_nl = st.get("total_nl", 0) + unrecorded_nl
        p.day_nl = st.get("day_nl", 0) + unrecorded_nl
        p.reservoir.draw_pl(unrecorded_nl * 1000)
        try:
            p.guard.from_dict(st.get("guard"), unrecorded_steps=(unrecorded_nl * 1000 + p.dosing.pl_per_step - 1)
                              // p.dosing.pl_per_step)
        except ValueError:
            p.guard.assume_full()  # lost windows: assume them full (nothing more until they drain)
            self.event(eventlog.STORE_PROBLEM, 0, eventlog.STORE_GUARD)
        self.tz_min = st.get("tz_min", 0)
        wall = st.get("wall_s", 0)
        if wall:
            self.wall.set(wall)
            self.time_source = "restored"
        p.set_tod(self._tod_from_wall() if wall else st.get("tod_ms", 0))
        self._last_tod = p.tod_ms
        halts.restore(p, st.get("halt", 0))
        b = st.get("bolus")
        if b:  # a bolus interrupted by the reset: abandoned, never resumed
            self.event(eventlog.BOLUS_ABANDONED, b[1])

    def state(self):
        """The document the store keeps (all small ints, JSON-able)."""
        p = self.pump
        th = p.therapy
        now = self.clock.ticks_ms()
        b = None
        if th is not None and th.bolus_kind is not None:
            b = [th.bolus_kind, th.bolus_left_nl]
        return {
            "v": STATE_V, "rx": th.prescription() if th is not None else None, "rx_id": self.rx_id,
            "therapy": th.to_dict(self.uptime.s) if th is not None else None, "bolus": b,
            "reservoir": p.reservoir.to_dict(), "delivered_nl": p.delivered_nl, "reserved_nl": p.reserved_nl,
            "total_nl": p.total_nl, "day_nl": p.day_nl, "guard": p.guard.to_dict(now),
            "cal": {"pl_per_step": p.dosing.pl_per_step}, "boot_count": self.boot_count,
            "wall_s": self.wall.now_s(), "tz_min": self.tz_min, "tod_ms": p.tod_ms, "halt": p.halt & halts.SAVED,
            "svc": self.serviced, "rotor": None if p.idx is None else p.idx.gaps(),
            "booked_nl": self.booked_total_nl,
        }

    def checkpoint(self):
        """Save now (extending the reserve mark). Raises on failure (the caller refuses its change)."""
        p = self.pump
        p.account()
        old = p.reserved_nl
        p.reserved_nl = p.new_mark()
        try:
            self.store.save(self.state())
        except Exception:
            p.reserved_nl = old
            raise
        p.need_save = False
        p.need_mark = False
        self.policy.saved()

    def move_mark(self):
        """Move the reserve mark RESERVE_MS of basal ahead in the mark file (no full save). Raises on
        failure, the old mark kept (the pump waits at it)."""
        p = self.pump
        p.account()
        old = p.reserved_nl
        p.reserved_nl = p.new_mark()
        try:
            self.store.save_mark(p.delivered_nl, p.reserved_nl)
        except Exception:
            p.reserved_nl = old
            raise
        p.need_mark = False

    def _checkpoint_safe(self, mark_only=False):
        try:
            if mark_only:
                self.move_mark()
            else:
                self.checkpoint()
        except Exception as e:
            self.store_failures += 1
            self.store_error = err_text(e)
            if self.store_failures == 1 or self.store_failures % 100 == 0:
                self.event(eventlog.STORE_PROBLEM, self.store.generation, eventlog.STORE_STATE)
            # no new mark: delivery stops at the old one (pump waits), and the alarm says why
            self.alarms.raise_alarm(alarms.INTERNAL)

    def _tod_from_wall(self):
        w = self.wall.now_s()
        return ((w + self.tz_min * 60) % 86400) * 1000

    def set_time(self, wall_s, tz_min):
        prev = self.wall.set(wall_s)
        self.tz_min = tz_min
        self.time_source = "host"
        self.pump.set_tod(self._tod_from_wall())
        self._last_tod = self.pump.tod_ms
        return prev

    # -- link ---------------------------------------------------------------------
    def send(self, line):
        self.serial.write(line)

    def poll_link(self):
        """Handle the complete requests waiting on the serial link, at most _MAX_LINES_PER_POLL: a
        flood of requests must not keep the control tick (and the watchdog feed) waiting."""
        clock = self.clock
        now = clock.ticks_ms()
        self.sup.check_in(self.t_link, now)
        lines = 0
        while lines < _MAX_LINES_PER_POLL:
            c = self.serial.readchar()
            if c < 0:
                return
            rd = self.reader
            if rd.pending() and clock.ticks_diff(now, self.rx_ms) >= protocol.IDLE_DROP_MS:
                rd.drop()  # the rest of that line is not coming: a killed tool's, not glued to this one
            self.rx_ms = now
            if (c == 3 or c == 1) and self.pump.repl_locked:
                self._tell_repl_locked(now)
            st = rd.feed(c)
            if st == protocol.FEED_LINE:
                line = self.reader.take()
                if line.strip():  # blank lines (a terminal's Enter) are not requests
                    lines += 1
                    r = protocol.dispatch(line, self.ops, self.auth, self._stream)
                    if r is not None:
                        self.send(r)
                    self.pump.sync_repl_lock()  # a program locks at once, not at the next tick
            elif st == protocol.FEED_OVERFLOW:
                self.send(protocol.error_line(
                    None, protocol.E_FRAME, "line longer than %d bytes discarded" % protocol.MAX_LINE))

    def _tell_repl_locked(self, now):
        """Ctrl-C/Ctrl-A (mpremote, a terminal) while therapy runs: say why the REPL does not come, on
        the link where that tool shows what it received; at most once a second."""
        if self.repl_told is not None and 0 <= self.clock.ticks_diff(now, self.repl_told) < 1000:
            return
        self.repl_told = now
        self.send(REPL_LOCKED_LINE)

    # -- loop ---------------------------------------------------------------------
    def tick(self):
        self.uptime.update()
        self.ticks += 1
        now = self.clock.ticks_ms()
        sup = self.sup
        try:
            self.pump.tick(now)
            sup.check_in(self.t_tick, now)  # a tick that raised does not count as alive
        except Exception as e:
            self.fail_safe(e)
        self.alarms.tick(now)
        b = self.button
        if b is not None:
            ev = b.poll()
            if ev:
                self.button_pressed(ev)
        if self.housekeeping_due(now):
            self._house_t = now
            try:
                self.housekeeping()
                sup.check_in(self.t_house, now)
            except Exception as e:
                self.fail_safe(e)
        if not sup.service(now) and not self._late_seen and sup.late_task() is not None:
            self.task_late()

    def housekeeping_due(self, now):
        p = self.pump
        return self.clock.ticks_diff(now, self._house_t) >= _HOUSEKEEP_MS or p.need_save or p.need_mark

    def task_late(self):
        """A task missed its deadline: the watchdog is no longer fed and will reset the board; stop the
        motor and log first (the reset then reads as a watchdog reset, counted by the boot-loop guard)."""
        self._late_seen = True
        halts.late(self.pump, self.board, ("tick", "link", "housekeeping").index(self.sup.late_task()))

    def fail_safe(self, e):
        """Any exception in the tick: safe state (motor stopped), INTERNAL alarm, logged. The exception
        may be a MemoryError: nothing here may raise out of the loop."""
        halts.fault(self.pump, self.board)
        self.last_error = err_text(e)
        try:
            self.send(protocol.event_line("internal", {"error": self.last_error}))
        except Exception:
            pass

    def button_pressed(self, ev):
        try:
            ops_bolus.patient_bolus(self, "button")
        except protocol.ProtocolError:
            pass  # refused and logged; the patient sees no bolus start (a tone could say why)

    def housekeeping(self):
        p = self.pump
        if self.battery is not None:
            self.battery.check(self.uptime.s)
        p.account()
        tod = p.tod_ms
        if tod < self._last_tod:  # midnight passed
            p.day_nl = 0
        self._last_tod = tod
        self.wall.now_s()  # keep the wall clock's tick deltas short
        up = self.uptime.s
        if up >= self._next_delivery_log_s:
            self._next_delivery_log_s = up + _DELIVERY_LOG_S
            self.event(eventlog.DELIVERY, p.delivered_nl, p.rate_now())
            self.policy.progress()
        if p.running():
            self.policy.progress()
            if p.reserve_low():
                p.need_mark = True
        if p.need_save or self.policy.due():
            self._checkpoint_safe()
        elif p.need_mark:
            self._checkpoint_safe(True)
        elif up >= self._next_gc_s:  # not in a pass that wrote the flash: one long pass at a time
            self._next_gc_s = up + _GC_S
            gc.collect()

    def boot(self):
        cause = self.board.reset_cause()
        self.event(eventlog.BOOT, eventlog.reset_cause_index(cause), self.boot_count)
        self._checkpoint_safe()  # boot_count and the recovered totals are on flash before delivery
        self.booted = True
        self.send(protocol.event_line("boot", {
            "fw": VERSION, "board": self.board.name, "reset_cause": cause, "device_id": self.identity.device_id,
            "keys": self.identity.keys_state}))

    def step(self, next_tick):
        """One pass of the loop: link, then the control tick when due. Returns the next due tick."""
        self.poll_link()
        clock = self.clock
        now = clock.ticks_ms()
        wait_ms = clock.ticks_diff(next_tick, now)
        if wait_ms > 0:
            self.serial.wait(wait_ms)
            return next_tick
        self.tick()
        next_tick = clock.ticks_add(next_tick, TICK_MS)
        if clock.ticks_diff(next_tick, now) <= 0:  # fell behind (slow host, fast clock): no burst
            next_tick = clock.ticks_add(now, TICK_MS)
        return next_tick

    def run(self):
        self.sup.start()  # the hardware watchdog, fed by sup.service() while every task checks in
        self.boot()
        next_tick = self.clock.ticks_add(self.clock.ticks_ms(), TICK_MS)
        while True:
            next_tick = self.step(next_tick)

    def status(self):
        self.uptime.update()
        gc.collect()
        return {
            "fw": VERSION, "board": self.board.name, "device_id": self.identity.device_id,
            "uptime_ms": self.uptime.ms(), "reset_cause": self.board.reset_cause(),
            "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(), "ticks": self.ticks,
            "platform": sys.platform,
        }




class _NoWdt:
    """A board without a watchdog: the supervisor still keeps the boot-loop guard and check-ins."""

    def start(self, timeout_ms):
        pass

    def feed(self):
        pass


class _JsonRecord:
    """The supervisor's persisted record: a small JSON file (temp + rename: atomic on littlefs)."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            return None  # first boot
        return json.loads(text)  # ValueError: the supervisor reports the record as unusable

    def save(self, d):
        store.write_json(self.path, d)


def _board_op(fn):
    """A board's op (args -> result) with ValueError reported as bad arguments."""
    def handler(args):
        try:
            return fn(args)
        except ValueError as e:
            raise protocol.ProtocolError(protocol.E_ARGS, str(e))
    return handler


def _sim_only(name, board_name):
    def handler(args):
        raise protocol.ProtocolError(E_SIM_ONLY, "'%s' exists only on the virtual board, not on %s" % (
            name, board_name))
    return handler


def main(board, root="/"):
    app = App(board, root)
    try:
        app.run()
    except KeyboardInterrupt:
        # Ctrl-C from the host (mpremote) while the REPL is not locked: leave for the REPL. The
        # watchdog would otherwise reset the board in the middle of the host's session.
        supervisor.safe_state(board)
        disable = getattr(app.wdt, "disable", None)
        if disable is not None:
            disable()
        print("itpump: stopped by Ctrl-C, REPL open")
