# Supervisor: task check-ins -> hardware watchdog feed; reset cause and boot-loop guard; safe state.
# service() feeds board.wdt only while every task checks in within its deadline; a miss latches.
# Unexpected watchdog resets in a row lead to safe mode. check_in()/service() allocate nothing.
# Design: docs/watchdog.md.
import json

from micropython import const

from itpump import alarms, check_int, store

_WDT_MAX_MS = const(8388)  # rp2 hardware limit
STABLE_MS = const(600000)  # 10 min of healthy running ends a boot loop
_BOOT_LOOP_LIMIT = const(3)  # this many unexpected watchdog resets in a row -> safe mode
_MAX_TASKS = const(8)
_MAX_DEADLINE_MS = const(1 << 28)


def safe_state(board):
    """Stop the motor and cut its drive. Never raises; True if every step succeeded (or no motor)."""
    motor = getattr(board, "motor", None)
    if motor is None:
        return True
    ok = True
    try:
        motor.stop()
    except Exception:  # keep going: the enable line may still work
        ok = False
    try:
        motor.enable(False)
    except Exception:
        ok = False
    return ok


class Supervisor:
    def __init__(self, wdt, clock, persist=None, timeout_ms=5000, boot_loop_limit=_BOOT_LOOP_LIMIT):
        self._wdt = wdt
        self._clock = clock
        self._persist = persist
        self.timeout_ms = check_int("timeout_ms", timeout_ms, 1, _WDT_MAX_MS)
        self.boot_loop_limit = check_int("boot_loop_limit", boot_loop_limit, 1, 100)
        self._names = []
        self._deadline = []
        self._last = []
        self.late_id = -1  # the id (add_task) of the first task that missed its deadline (latched)
        self._started = False
        self._prev = 0  # clock at the previous service()
        self._up_ms = 0  # healthy run time towards STABLE_MS
        self._stable_pending = False
        self.wdt_resets = 0
        self.safe_mode = False
        self.feeds = 0  # watchdog feeds (status / tests); wraps harmlessly
        self.intent = False

    # -- tasks -------------------------------------------------------------------
    def add_task(self, name, deadline_ms):
        """Register a task before start(); returns its id for check_in()."""
        if self._started:
            raise ValueError("add_task %r: the watchdog is already running" % (name,))
        if len(self._names) >= _MAX_TASKS:
            raise ValueError("add_task %r: at most %d tasks" % (name, _MAX_TASKS))
        check_int("deadline_ms", deadline_ms, 1, _MAX_DEADLINE_MS)
        self._names.append(name)
        self._deadline.append(deadline_ms)
        self._last.append(0)
        return len(self._names) - 1

    def start(self, now_ms=None):
        """Start the hardware watchdog (cannot be stopped on rp2). Every task counts as just checked in."""
        if not self._names:
            raise ValueError("start: no tasks registered")
        now = self._clock.ticks_ms() if now_ms is None else now_ms
        for i in range(len(self._last)):
            self._last[i] = now
        self._prev = now
        self._started = True
        self._wdt.start(self.timeout_ms)
        self._wdt.feed()

    def check_in(self, task, now_ms):
        self._last[task] = now_ms

    def service(self, now_ms):
        """Once per control tick: feed the watchdog only if every task is on time. Returns True if fed."""
        if not self._started or self.late_id >= 0:
            return False
        clock = self._clock
        for i in range(len(self._last)):
            if clock.ticks_diff(now_ms, self._last[i]) > self._deadline[i]:
                self.late_id = i
                return False
        self._wdt.feed()
        self.feeds += 1
        if self._stable_pending:
            self._count_stable(now_ms)
        self._prev = now_ms
        return True

    def _count_stable(self, now_ms):
        """Healthy run time since the previous service() towards STABLE_MS, which ends a boot loop."""
        dt = self._clock.ticks_diff(now_ms, self._prev)
        if dt > 0:
            self._up_ms += dt
        if self._up_ms >= STABLE_MS:
            self._stable_pending = False
            self.wdt_resets = 0
            self._save()

    def late_task(self):
        """Name of the task that missed its deadline (the watchdog will reset us), or None."""
        return None if self.late_id < 0 else self._names[self.late_id]

    def status(self, now_ms):
        tasks = {}
        for i in range(len(self._names)):
            tasks[self._names[i]] = {"deadline_ms": self._deadline[i],
                                     "age_ms": self._clock.ticks_diff(now_ms, self._last[i])}
        return {"timeout_ms": self.timeout_ms, "tasks": tasks, "late": self.late_task(), "feeds": self.feeds,
                "wdt_resets": self.wdt_resets, "safe_mode": self.safe_mode}

    # -- boot ----------------------------------------------------------------------
    def _save(self):
        if self._persist is not None:
            self._persist.save({"wdt_resets": self.wdt_resets, "intent": self.intent, "safe": self.safe_mode})

    def boot(self, cause):
        """Decide how to come up after a reset. cause: board.reset_cause() ("PWRON", "WDT", "SOFT", "HARD",
        "CRASH": the interpreter died; it counts as an unexpected reset like "WDT").
        Returns a dict for the app to act on and log:
          cause        what happened, "INTENTIONAL" when our own reset marker was found
          wdt_resets   unexpected watchdog resets in a row (persisted)
          safe_mode    True: no therapy until a clinician clears it (boot loop, or still in safe mode)
          bolus        "abandon": a bolus interrupted by the reset is never resumed
          resume_basal True if basal may resume (the app still needs its persisted state to be valid)
          alarms       alarm codes to raise
          record       "ok", "none" (first boot) or why the persisted record was unusable"""
        rec = None
        note = "none"
        if self._persist is not None:
            try:
                rec = self._persist.load()
            except Exception as e:  # unreadable: treat as no history, but say so
                rec = None
                note = "load failed: %s" % (e,)
        count = 0
        intent = False
        was_safe = False
        if rec is not None:
            try:
                count = check_int("wdt_resets", rec.get("wdt_resets", 0), 0, 1000)
                intent = rec.get("intent", False) is True
                was_safe = rec.get("safe", False) is True
                note = "ok"
            except (ValueError, AttributeError) as e:
                count = 0
                intent = False
                was_safe = False
                note = "invalid: %s" % (e,)
        if intent and cause in ("WDT", "SOFT", "HARD"):
            cause = "INTENTIONAL"  # machine.reset() reads as WDT on rp2
        unexpected = cause == "WDT" or cause == "CRASH"  # a crash loop ends in safe mode like a WDT loop
        if unexpected:
            count += 1
        self.wdt_resets = count
        self.safe_mode = was_safe or count >= self.boot_loop_limit
        self.intent = False
        self._stable_pending = not self.safe_mode and count > 0
        self._up_ms = 0
        self._save()
        found = []
        if unexpected:
            found.append(alarms.WATCHDOG_RESET)
        if self.safe_mode:
            found.append(alarms.INTERNAL)
        return {"cause": cause, "wdt_resets": count, "safe_mode": self.safe_mode, "bolus": "abandon",
                "resume_basal": not self.safe_mode, "alarms": found, "record": note}

    def note_intentional_reset(self):
        """Call right before machine.reset() (service op, firmware update): not counted as a crash."""
        self.intent = True
        self._save()

    def clear_intentional_reset(self):
        """The reset announced by note_intentional_reset() is not coming (service ended without one)."""
        if self.intent:
            self.intent = False
            self._save()

    def clear_safe_mode(self):
        """Clinician decision after diagnosis: forget the boot loop. Takes effect at the next boot."""
        self.wdt_resets = 0
        self.safe_mode = False
        self._stable_pending = False
        self._save()


class NoWdt:
    """A board without a watchdog: the supervisor still keeps the boot-loop guard and check-ins."""

    def start(self, timeout_ms):
        pass

    def feed(self):
        pass


class JsonRecord:
    """The supervisor's persisted record: a small JSON file, replaced atomically (store.write_json)."""

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
