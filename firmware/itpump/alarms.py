# Alarm table and manager: raise / condition cleared / acknowledge / escalate, and annunciation.
# Priorities follow IEC 60601-1-8 (high: immediate response, medium: prompt, low: awareness).
# A latching alarm stays active after its condition goes until it is acknowledged; acknowledging
# silences it at once but clears it only when the condition is gone (the "alarms latch" lesson).
# Per-tick work (tick(), repeated raise of a present condition) allocates nothing.
from array import array

from micropython import const

# Alarm codes: row numbers of TABLE below (stable: the link, event log and pumpctl use the names);
# tests/firmware/test_alarms.py checks each constant against its row.
OCCLUSION = const(0)
LEAK = const(1)
STALL = const(2)
DOSE_GUARD = const(3)
RESERVOIR_LOW = const(4)
RESERVOIR_EMPTY = const(5)
BATTERY_LOW = const(6)
BATTERY_ERI = const(7)
BATTERY_EOS = const(8)
WATCHDOG_RESET = const(9)
SENSOR_FAULT = const(10)
STEP_MISMATCH = const(11)
INTERNAL = const(12)
N_CODES = const(13)

LOW = const(1)
MEDIUM = const(2)
HIGH = const(3)
PRIORITY_NAMES = ("none", "low", "medium", "high")

# name, priority, latching, event. Delivery-stopping faults are high and latch; states that persist on their
# own (battery low, reservoir low) need no latch; a watchdog reset is an event, so it latches until seen.
# An event alarm is raised by an event, not by a condition the firmware keeps measuring (a stall or a
# runaway is seen again by the next tick if it persists): no sensor says when it is over, so its
# acknowledgement is the clinician's word that the cause is dealt with, and ends it (halts.ack).
TABLE = (
    ("OCCLUSION", HIGH, True, False),
    ("LEAK", HIGH, True, False),
    ("STALL", HIGH, True, True),
    ("DOSE_GUARD", HIGH, True, True),
    ("RESERVOIR_LOW", LOW, False, False),
    ("RESERVOIR_EMPTY", HIGH, True, False),
    ("BATTERY_LOW", LOW, False, False),
    ("BATTERY_ERI", MEDIUM, False, False),
    ("BATTERY_EOS", HIGH, True, False),
    ("WATCHDOG_RESET", MEDIUM, True, True),
    ("SENSOR_FAULT", HIGH, True, False),
    ("STEP_MISMATCH", HIGH, True, True),
    ("INTERNAL", HIGH, True, True),
)
NAMES = tuple(t[0] for t in TABLE)
_PRIO = bytes(t[1] for t in TABLE)
_LATCH = bytes(1 if t[2] else 0 for t in TABLE)

# Unacknowledged this long, an alarm sounds with the next priority's pattern (high cannot go higher).
ESCALATE_MS = (0, 900000, 120000, 0)  # by priority: low 15 min, medium 2 min

# Auditory bursts, IEC 60601-1-8 Tables 3/4 (ranges as we read them; verify against the standard):
# alternating on/off ms, last entry = interburst interval.
# high: 10 pulses "x-x-x--x-x", pulse 75-200 ms, spacing 50-125 ms, 3rd-4th = 2 pulses + spacing,
#       5th-6th 0.35-1.3 s, interburst 2.5-15 s
# medium: 3 pulses, pulse 125-250 ms, spacing 125-250 ms, interburst 2.5-30 s
# low: 1-2 pulses, pulse 125-250 ms, interburst > 15 s
_PAT_HIGH = array("H", (150, 100, 150, 100, 150, 400, 150, 100, 150, 700,
                        150, 100, 150, 100, 150, 400, 150, 100, 150, 4000))
_PAT_MEDIUM = array("H", (200, 200, 200, 200, 200, 6000))
_PAT_LOW = array("H", (200, 200, 200, 20000))
_PATTERNS = (array("H"), _PAT_LOW, _PAT_MEDIUM, _PAT_HIGH)  # by priority; none: silent
_PERIODS = (0, sum(_PAT_LOW), sum(_PAT_MEDIUM), sum(_PAT_HIGH))
# Fundamental 150-1000 Hz per the standard; a different pitch per priority helps tell them apart.
TONE_HZ = (0, 660, 800, 960)
# Visual (Table 2): high flashes 1.4-2.8 Hz, medium 0.4-0.8 Hz, duty 20-60 %; low constant.
# One LED here, so colour (red / yellow / cyan) is not shown.
_LED_PERIOD_MS = (0, 0, 1600, 500)
_LED_ON_MS = (0, 0, 800, 250)

# flags per code
_PRESENT = const(1)  # condition currently true
_ACTIVE = const(2)  # alarm shown (present, or latched)
_ACKED = const(4)  # silenced by the user
_ESCALATED = const(8)

# event kinds given to listeners
EV_RAISE = "raise"
EV_CLEAR = "clear"
EV_ACK = "ack"
EV_ESCALATE = "escalate"
_KINDS = (EV_RAISE, EV_CLEAR, EV_ACK, EV_ESCALATE)

_AGE_CAP_MS = const(1 << 29)


def code_of(name):
    """Alarm name -> code; ValueError naming the known ones."""
    for i in range(N_CODES):
        if NAMES[i] == name:
            return i
    raise ValueError("unknown alarm %r (known: %s)" % (name, ", ".join(NAMES)))


def priority(code):
    return _PRIO[code]


def latching(code):
    return bool(_LATCH[code])


def event(code):
    """True for an alarm raised by an event, False for one raised by a condition (TABLE)."""
    return TABLE[code][3]


class AlarmManager:
    def __init__(self, clock, buzzer=None, led=None, recent_n=16):
        self._clock = clock
        self._buzzer = buzzer
        self._led = led
        self._flags = bytearray(N_CODES)
        self._age_ms = array("i", [0] * N_CODES)  # unacknowledged time, for escalation
        self._since_s = array("i", [0] * N_CODES)  # uptime_s when raised
        self._listeners = []
        self.listener_errors = 0
        self._last = clock.ticks_ms()
        self.uptime_s = 0  # from accumulated tick deltas: survives the tick wrap
        self._up_ms = 0
        # recent transitions ring (preallocated)
        self._rn = recent_n
        self._r_code = bytearray(recent_n)
        self._r_kind = bytearray(recent_n)
        self._r_s = array("i", [0] * recent_n)
        self._r_next = 0
        self._r_count = 0
        # annunciation state
        self.tone_hz = 0  # what the buzzer plays now (0 = silent)
        self.led_on = 0
        self._aud_prio = 0
        self._aud_phase = 0
        self._vis_prio = 0
        self._vis_phase = 0

    def add_listener(self, fn):
        """fn(kind, code) on each transition: kind in EV_RAISE/EV_CLEAR/EV_ACK/EV_ESCALATE.
        For the event log and the unsolicited link events. A listener that raises is counted in
        listener_errors (the app raises INTERNAL) and the alarm goes on regardless."""
        self._listeners.append(fn)

    # -- time ------------------------------------------------------------------
    def _sync(self, now_ms):
        """Advance the uptime and return the ms elapsed since the last call (0 if time went back)."""
        if now_ms is None:
            now_ms = self._clock.ticks_ms()
        dt = self._clock.ticks_diff(now_ms, self._last)
        if dt <= 0:
            return 0
        self._last = now_ms
        ms = self._up_ms + dt
        if ms >= 1000:
            s = ms // 1000
            self.uptime_s += s
            ms -= s * 1000
        self._up_ms = ms
        return dt

    def _emit(self, kind, code):
        i = self._r_next
        self._r_code[i] = code
        self._r_kind[i] = kind
        self._r_s[i] = self.uptime_s
        self._r_next = (i + 1) % self._rn
        if self._r_count < self._rn:
            self._r_count += 1
        name = _KINDS[kind]
        for fn in self._listeners:
            try:
                fn(name, code)
            except Exception:  # a failing log or link must not stop the alarm from sounding
                self.listener_errors += 1

    def _check(self, code):
        if not isinstance(code, int) or code < 0 or code >= N_CODES:
            raise ValueError("alarm code must be 0..%d, got %r" % (N_CODES - 1, code))

    # -- conditions ----------------------------------------------------------------
    def raise_alarm(self, code, now_ms=None):
        """The condition is present. Cheap to repeat every tick while it holds."""
        self._check(code)
        f = self._flags[code]
        if f & _PRESENT:
            return
        self._sync(now_ms)
        if f & _ACTIVE and not (f & _ACKED):
            # latched, unacknowledged and the condition is back: same alarm, still sounding
            self._flags[code] = f | _PRESENT
            return
        # new occurrence (or recurrence after it was silenced): sound again
        self._flags[code] = _PRESENT | _ACTIVE
        self._age_ms[code] = 0
        self._since_s[code] = self.uptime_s
        self._emit(0, code)

    def clear_condition(self, code, now_ms=None):
        """The condition is gone. A non-latching alarm ends; a latching one ends only if acknowledged."""
        self._check(code)
        f = self._flags[code]
        if not (f & _PRESENT):
            return
        self._sync(now_ms)
        f &= ~_PRESENT
        if f & _ACTIVE and (not _LATCH[code] or f & _ACKED):
            self._flags[code] = 0
            self._emit(1, code)
        else:
            self._flags[code] = f

    def ack(self, code, now_ms=None):
        """Acknowledge: silences; clears a latched alarm whose condition is gone. True if it was active."""
        self._check(code)
        f = self._flags[code]
        if not (f & _ACTIVE):
            return False
        self._sync(now_ms)
        if not (f & _ACKED):
            self._flags[code] = f | _ACKED
            self._emit(2, code)
        if not (f & _PRESENT):
            self._flags[code] = 0
            self._emit(1, code)
        return True

    def ack_all(self, now_ms=None):
        """Acknowledge every active alarm; returns how many there were."""
        n = 0
        for code in range(N_CODES):
            if self._flags[code] & _ACTIVE:
                self.ack(code, now_ms)
                n += 1
        return n

    # -- queries -------------------------------------------------------------------
    def is_active(self, code):
        return bool(self._flags[code] & _ACTIVE)

    def is_present(self, code):
        return bool(self._flags[code] & _PRESENT)

    def highest(self):
        """Highest priority among active alarms (0 if none)."""
        p = 0
        for code in range(N_CODES):
            if self._flags[code] & _ACTIVE and _PRIO[code] > p:
                p = _PRIO[code]
        return p

    def active(self):
        """Active alarms: highest priority first, then the oldest (allocates: status replies, not the tick)."""
        out = []
        for code in range(N_CODES):
            f = self._flags[code]
            if f & _ACTIVE:
                out.append({"code": NAMES[code], "priority": PRIORITY_NAMES[_PRIO[code]],
                            "latching": bool(_LATCH[code]), "present": bool(f & _PRESENT),
                            "acked": bool(f & _ACKED), "escalated": bool(f & _ESCALATED),
                            "since_s": self._since_s[code]})
        out.sort(key=lambda a: (-PRIORITY_NAMES.index(a["priority"]), a["since_s"]))  # stable: code order
        return out

    def recent(self):
        """Last transitions, newest first: {"code", "event", "t_s"} (t_s is this manager's uptime)."""
        out = []
        i = self._r_next
        for _ in range(self._r_count):
            i = (i - 1) % self._rn
            out.append({"code": NAMES[self._r_code[i]], "event": _KINDS[self._r_kind[i]], "t_s": self._r_s[i]})
        return out

    # -- per tick ------------------------------------------------------------------
    def tick(self, now_ms=None):
        """Escalate and annunciate. Returns the tone now in Hz (0 = silent); led_on is updated too.
        Drives the buzzer and LED given to the constructor when their output changes."""
        dt = self._sync(now_ms)
        tone = self._tone(self._escalate(dt), dt)
        led = self._light(self.highest(), dt)  # the most urgent active alarm, acknowledged or not
        if tone != self.tone_hz:
            self.tone_hz = tone
            if self._buzzer is not None:
                if tone:
                    self._buzzer.tone(tone)
                else:
                    self._buzzer.off()
        if led != self.led_on:
            self.led_on = led
            if self._led is not None:
                self._led.value(led)
        return tone

    def _escalate(self, dt):
        """Ages the unacknowledged alarms by dt ms, escalating those due. Returns the priority to sound."""
        aud = 0
        for code in range(N_CODES):
            f = self._flags[code]
            if not (f & _ACTIVE) or f & _ACKED:
                continue
            if not (f & _ESCALATED):
                f = self._age(code, dt)
            p = _PRIO[code]
            if f & _ESCALATED and p < HIGH:
                p += 1
            if p > aud:
                aud = p
        return aud

    def _age(self, code, dt):
        """An unacknowledged alarm dt ms older, escalated when due. Returns its flags."""
        f = self._flags[code]
        age = self._age_ms[code] + dt
        if age > _AGE_CAP_MS:
            age = _AGE_CAP_MS
        self._age_ms[code] = age
        esc = ESCALATE_MS[_PRIO[code]]
        if esc and age >= esc:
            f |= _ESCALATED
            self._flags[code] = f
            self._emit(3, code)
        return f

    def _tone(self, aud, dt):
        """The audible pattern of priority aud, dt ms on: the tone now (Hz, 0 = silent)."""
        # restart the burst when the priority sounding changes
        if aud != self._aud_prio:
            self._aud_prio = aud
            self._aud_phase = 0
        elif aud:
            self._aud_phase = (self._aud_phase + dt) % _PERIODS[aud]
        if aud:
            pat = _PATTERNS[aud]
            t = self._aud_phase
            for i in range(len(pat)):
                t -= pat[i]
                if t < 0:
                    return 0 if i & 1 else TONE_HZ[aud]
        return 0

    def _light(self, vis, dt):
        """The visual pattern of priority vis, dt ms on: the LED now (1 on, 0 off)."""
        if vis != self._vis_prio:
            self._vis_prio = vis
            self._vis_phase = 0
        elif vis and _LED_PERIOD_MS[vis]:
            self._vis_phase = (self._vis_phase + dt) % _LED_PERIOD_MS[vis]
        if not vis:
            return 0
        if not _LED_PERIOD_MS[vis]:
            return 1
        return 1 if self._vis_phase < _LED_ON_MS[vis] else 0
