# Composition root: builds the parts from the board object and runs the loop (link, control tick,
# housekeeping). Imports nothing from machine: every device comes from the board. Where each rule
# lives: docs/firmware.md.
import gc
import os
import sys

from micropython import const

import itpump

# Every module imported (compiled, when flashed as source) one at a time, a collection after each: compiles
# interleaved with each other's garbage fragment the heap until a small block cannot be found (the sim's).
for _m in itpump.MODULES:
    __import__("itpump." + _m)
    gc.collect()
del _m  # not a global of the app's: a module dict slot

from itpump import alarms, eventlog, halts, journal, link, ops, ops_bolus, power, protocol, pump, supervisor  # noqa: E402
from itpump.identity import Identity  # noqa: E402
from itpump.statedoc import StateDoc  # noqa: E402
from itpump.timekeeping import Time  # noqa: E402

# Watchdog: inside rp2's 8388 ms maximum; long enough for the virtual board's fast clock (ticks up to 5 s
# apart). A hung loop issues no new moves (a move lasts <= 90 ms): no motor while the watchdog waits.
_WDT_TIMEOUT_MS = const(8000)
# Supervised tasks and their check-in deadlines (ms): missing one stops the feed (the board resets). Their
# ids are their places here (Supervisor.add_task numbers them in order).
_TASKS = const((("tick", 6000), ("link", 6000), ("housekeeping", 7000)))
_T_TICK = const(0)
_T_LINK = const(1)
_T_HOUSE = const(2)
# Housekeeping (accounting, reserve, saves, battery): once a second by the clock, not by ticks (fast clock)
_HOUSEKEEP_MS = const(1000)
_DELIVERY_LOG_S = const(3600)  # a DELIVERY record every hour
# Heap collected once a minute: frames over 11 words come from the heap, and garbage left between
# collections makes each search further (the rp2 tick grew 2.7 -> 6.5 % in an hour; docs/epico.md).
_GC_S = const(60)
_MAX_LINES_PER_POLL = const(4)  # requests handled per pass of the loop before the tick's turn
_DEFAULT_PL_PER_STEP = const(20000)


class App:
    def __init__(self, board, root="/"):
        self.board = board
        clock = board.clock
        self.ticks = 0
        self.button = getattr(board, "button", None)
        self.time = Time(clock)
        self.alarms = alarms.AlarmManager(clock, getattr(board, "buzzer", None), getattr(board, "led", None))
        self.sup = sup = supervisor.Supervisor(getattr(board, "wdt", None) or supervisor.NoWdt(), clock,
                                               supervisor.JsonRecord(root + "data/sup.json"), _WDT_TIMEOUT_MS)
        for name, deadline_ms in _TASKS:
            sup.add_task(name, deadline_ms)
        self._late_seen = False
        self._house_t = clock.ticks_ms()
        self._next_delivery_log_s = _DELIVERY_LOG_S
        self._next_gc_s = _GC_S
        self.last_error = None  # the last exception the loop caught
        self.cal_problem = None  # why the board's calibration could not be used
        if "data" not in os.listdir(root):  # storage first: everything after may log
            os.mkdir(root + "data")
        self.journal = jl = journal.Journal(root + "data/log", clock, self.time.wall, board.serial.write)
        self.log = jl.log
        self.alarms.add_listener(jl.on_alarm)
        cal = getattr(board, "calibration", None) or {}
        pl = cal.get("pl_per_step", _DEFAULT_PL_PER_STEP)
        try:
            self.pump = p = pump.Pump(board, self.alarms, pl, self.log, cal)
        except ValueError as e:  # a bad line calibration: no detector, so no delivery until a clinician acks
            self.cal_problem = str(e)
            self.pump = p = pump.Pump(board, self.alarms, pl, self.log, detector=False)
            halts.hold_internal(p)
        self.battery = None  # power.Watch, on a board with a battery sensor
        if getattr(board, "battery", None) is not None:
            try:
                self.battery = power.Watch(board.battery, power.from_calibration(cal), p, self.alarms)
            except ValueError as e:
                self.cal_problem = str(e)
                self.alarms.raise_alarm(alarms.INTERNAL)
        self.identity = Identity(board, root, jl)
        self.auth = self.identity.auth
        self.doc = StateDoc(root + "data/state", p, self.time, jl)
        self.doc.restore()
        # the reset cause against the supervisor's own marker, the boot-loop guard (a persisted count)
        self.boot_info = halts.after_reset(p, sup.boot(board.reset_cause()))
        self.link = link.Link(board, p, self.auth)  # the ops' service op opens the REPL through it
        self.ops = self.link.ops = ops.Table(p, self.doc, jl, self.time, sup, self.identity, board,
                                             self.status, self.link)

    def poll_link(self):
        """At most _MAX_LINES_PER_POLL requests: a flood must not keep the tick and the watchdog waiting."""
        now = self.board.clock.ticks_ms()
        self.sup.check_in(_T_LINK, now)
        lines = 0
        while lines < _MAX_LINES_PER_POLL:
            c = self.board.serial.readchar()
            if c < 0:
                return
            lines += self.link.take(c, now)

    def tick(self):
        self.time.update()
        self.ticks += 1
        now = self.board.clock.ticks_ms()
        with self:  # an exception: fail_safe() (__exit__), and the loop goes on
            self.link.sync_lock()  # after a restore, an alarm halt or a suspend
            self.pump.tick(now)
            self.sup.check_in(_T_TICK, now)  # a tick that raised does not count as alive
        self.alarms.tick(now)
        self._button()
        if self.housekeeping_due(now):
            self._house_t = now
            with self:
                self.housekeeping()
                self.sup.check_in(_T_HOUSE, now)
        if not self.sup.service(now) and not self._late_seen:
            self._watchdog_late()

    def _button(self):
        """A press of the board's button asks for a patient bolus."""
        b = self.button
        if b is not None and b.poll():
            try:
                ops_bolus.patient_bolus((self.pump, self.doc, self.journal, self.time), "button")
            except protocol.ProtocolError:
                pass  # refused and logged; the patient sees no bolus start (a tone could say why)

    def _watchdog_late(self):
        """The watchdog is no longer fed and will reset the board: stop the motor and log first."""
        if self.sup.late_id >= 0:
            self._late_seen = True
            halts.late(self.pump, self.board, self.sup.late_id)

    def housekeeping_due(self, now):
        p = self.pump
        return self.board.clock.ticks_diff(now, self._house_t) >= _HOUSEKEEP_MS or p.need_save or p.need_mark

    # `with self:` around a part of the loop: an exception in it is fail_safe()'s and the loop goes on.
    # A context manager, as `try: ... except Exception as e:` needs a frame of 14 words, which the chip
    # takes from the heap at every call (docs/epico.md).
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not isinstance(exc, Exception):  # None (no exception), or Ctrl-C / SystemExit: not ours
            return False
        self.fail_safe(exc)
        return True

    def fail_safe(self, e):
        """Any exception in the loop: motor stopped, INTERNAL alarm, told on the link; raises nothing."""
        halts.fault(self.pump, self.board)
        self.last_error = journal.err_text(e)
        try:
            self.board.serial.write(protocol.event_line("internal", {"error": self.last_error}))
        except Exception:
            pass

    def housekeeping(self):
        p = self.pump
        t = self.time
        if self.battery is not None:
            self.battery.check(t.s)
        p.account()
        if t.new_day(p.tod_ms):
            p.day_nl = 0
        t.wall.now_s()  # keep the wall clock's tick deltas short
        if t.s >= self._next_delivery_log_s:
            self._next_delivery_log_s = t.s + _DELIVERY_LOG_S
            self.journal.event(eventlog.DELIVERY, p.delivered_nl, p.rate_now())
            self.doc.policy.progress()
        if not self.doc.housekeep() and t.s >= self._next_gc_s:
            # not in a pass that wrote the flash: one long pass at a time
            self._next_gc_s = t.s + _GC_S
            gc.collect()

    def boot(self):
        cause = self.board.reset_cause()
        self.journal.event(eventlog.BOOT, eventlog.reset_cause_index(cause), self.doc.boot_count)
        self.doc.try_save()  # boot_count and the recovered totals are on flash before delivery
        self.board.serial.write(protocol.event_line("boot", {
            "fw": itpump.VERSION, "board": self.board.name, "reset_cause": cause, "device_id": self.identity.device_id,
            "keys": self.identity.keys_state}))

    def step(self, next_tick):
        """One pass of the loop: link, then the control tick when due. Returns the next due tick."""
        self.poll_link()
        clock = self.board.clock
        now = clock.ticks_ms()
        wait_ms = clock.ticks_diff(next_tick, now)
        if wait_ms > 0:
            self.board.serial.wait(wait_ms)
            return next_tick
        self.tick()
        next_tick = clock.ticks_add(next_tick, pump.TICK_MS)
        if clock.ticks_diff(next_tick, now) <= 0:  # fell behind (slow host, fast clock): no burst
            next_tick = clock.ticks_add(now, pump.TICK_MS)
        return next_tick

    def run(self):
        self.sup.start()  # the hardware watchdog, fed by sup.service() while every task checks in
        self.boot()
        clock = self.board.clock
        next_tick = clock.ticks_add(clock.ticks_ms(), pump.TICK_MS)
        while True:
            next_tick = self.step(next_tick)

    def status(self):
        """The device's part of the status op (ops.op_status adds delivery's)."""
        self.time.update()
        gc.collect()
        st = {"fw": itpump.VERSION, "board": self.board.name, "device_id": self.identity.device_id,
              "uptime_ms": self.time.ms(), "reset_cause": self.board.reset_cause(), "mem_free": gc.mem_free(),
              "mem_alloc": gc.mem_alloc(), "ticks": self.ticks, "platform": sys.platform}
        b = self.battery
        st.update({"keys": self.identity.keys_state, "auth_locked": self.auth.locked(),
                   "log_seq": self.log.seq if self.log is not None else -1, "battery_mv": 0 if b is None else b.mv,
                   "battery": None if b is None else b.batt.status(),
                   "supervisor": self.sup.status(self.board.clock.ticks_ms()), "boot": self.boot_info})
        if self.cal_problem:
            st["cal_problem"] = self.cal_problem
        if self.last_error:
            st["last_error"] = self.last_error
        return st


def main(board, root="/"):
    app = App(board, root)
    try:
        app.run()
    except KeyboardInterrupt:
        # Ctrl-C (mpremote) while the REPL is not locked: leave for it, the watchdog stopped if it can be
        supervisor.safe_state(board)
        disable = getattr(getattr(board, "wdt", None), "disable", None)
        if disable is not None:
            disable()
        print("itpump: stopped by Ctrl-C, REPL open")
