# Alarm table, manager and annunciation (firmware/itpump/alarms.py) under CPython and micropython.
import pytest

from fakes import TICKS_PERIOD, FakeClock, raises
from itpump import alarms
from itpump.alarms import BATTERY_ERI, BATTERY_LOW, HIGH, LOW, MEDIUM, OCCLUSION, RESERVOIR_LOW, STALL, AlarmManager

pytestmark = pytest.mark.micropython


class Buzzer:
    def __init__(self):
        self.calls = []

    def tone(self, hz):
        self.calls.append(hz)

    def off(self):
        self.calls.append(0)


class Led:
    def __init__(self):
        self.calls = []

    def value(self, on):
        self.calls.append(on)


def make(start=TICKS_PERIOD - 1000):
    c = FakeClock(start)
    b = Buzzer()
    led = Led()
    m = AlarmManager(c, b, led)
    events = []
    m.add_listener(lambda kind, code: events.append((kind, alarms.NAMES[code])))
    return c, m, b, led, events


def sample(c, m, ms, step=10):
    """Tone and LED every `step` ms for `ms`: lists of (tone_hz, led_on)."""
    out = []
    for _ in range(ms // step):
        m.tick(c.now)
        out.append((m.tone_hz, m.led_on))
        c.advance(step)
    return out


def edges(values):
    """Number of off -> on transitions (a leading 'on' counts)."""
    n = 0
    prev = 0
    for v in values:
        if v and not prev:
            n += 1
        prev = v
    return n


def test_table_has_every_code_with_priority_and_latching():
    want = ["OCCLUSION", "LEAK", "STALL", "DOSE_GUARD", "RESERVOIR_LOW", "RESERVOIR_EMPTY", "BATTERY_LOW",
            "BATTERY_ERI", "BATTERY_EOS", "WATCHDOG_RESET", "SENSOR_FAULT", "STEP_MISMATCH", "INTERNAL"]
    assert list(alarms.NAMES) == want and alarms.N_CODES == 13
    for i, name in enumerate(want):
        assert alarms.code_of(name) == i
        assert alarms.priority(i) in (LOW, MEDIUM, HIGH)
    assert alarms.priority(OCCLUSION) == HIGH and alarms.latching(OCCLUSION)
    assert alarms.priority(BATTERY_LOW) == LOW and not alarms.latching(BATTERY_LOW)
    assert alarms.priority(BATTERY_ERI) == MEDIUM
    e = raises(ValueError, alarms.code_of, "FIRE")
    assert "FIRE" in str(e) and "OCCLUSION" in str(e)


def test_each_code_constant_is_its_row_in_the_table():
    # TABLE is the one list of alarms: the code constants are its row numbers, the names its first column
    assert alarms.N_CODES == len(alarms.TABLE) == len(alarms.NAMES)
    for i in range(alarms.N_CODES):
        name = alarms.TABLE[i][0]
        assert alarms.NAMES[i] == name and getattr(alarms, name) == i, (i, name)
        assert alarms.priority(i) == alarms.TABLE[i][1] and alarms.latching(i) == alarms.TABLE[i][2]
    assert len(set(alarms.NAMES)) == alarms.N_CODES


def test_non_latching_alarm_ends_with_its_condition():
    c, m, b, led, ev = make()
    m.raise_alarm(BATTERY_LOW, c.now)
    assert m.is_active(BATTERY_LOW) and m.tick(c.now) == alarms.TONE_HZ[LOW]
    m.raise_alarm(BATTERY_LOW, c.now)  # repeated while present: no new event
    m.clear_condition(BATTERY_LOW, c.now)
    assert not m.is_active(BATTERY_LOW) and m.tick(c.now) == 0
    assert ev == [("raise", "BATTERY_LOW"), ("clear", "BATTERY_LOW")]


def test_latching_alarm_needs_ack_and_condition_gone():
    c, m, b, led, ev = make()
    m.raise_alarm(OCCLUSION, c.now)
    m.clear_condition(OCCLUSION, c.now)
    assert m.is_active(OCCLUSION) and not m.is_present(OCCLUSION)
    assert m.tick(c.now) == alarms.TONE_HZ[HIGH]  # still sounding: latched
    assert m.ack(OCCLUSION, c.now) is True
    assert not m.is_active(OCCLUSION) and m.tick(c.now) == 0
    assert ev == [("raise", "OCCLUSION"), ("ack", "OCCLUSION"), ("clear", "OCCLUSION")]
    assert m.ack(OCCLUSION, c.now) is False


def test_ack_silences_but_the_alarm_stays_while_its_condition_holds():
    c, m, b, led, ev = make()
    m.raise_alarm(STALL, c.now)
    m.ack(STALL, c.now)
    assert m.is_active(STALL)
    s = sample(c, m, 8000)
    assert all(t == 0 for t, _ in s)  # silent
    assert edges([lit for _, lit in s]) >= 15  # the visual signal goes on (2 Hz flashing)
    m.raise_alarm(STALL, c.now)  # still the same occurrence: stays silent
    assert m.tick(c.now) == 0
    m.clear_condition(STALL, c.now)
    assert not m.is_active(STALL)
    assert ev[-1] == ("clear", "STALL")
    m.raise_alarm(STALL, c.now)  # a new occurrence sounds again
    assert m.tick(c.now) == alarms.TONE_HZ[HIGH]


def test_latched_alarm_whose_condition_returns_keeps_sounding():
    c, m, b, led, ev = make()
    m.raise_alarm(OCCLUSION, c.now)
    m.clear_condition(OCCLUSION, c.now)
    m.raise_alarm(OCCLUSION, c.now)
    assert m.is_present(OCCLUSION) and m.tick(c.now) == alarms.TONE_HZ[HIGH]
    m.ack(OCCLUSION, c.now)
    assert m.is_active(OCCLUSION)  # acked but present: not cleared
    assert [k for k, _ in ev] == ["raise", "ack"]


def test_burst_patterns_per_priority():
    for code, prio, period, pulses in ((OCCLUSION, HIGH, 7600, 10), (BATTERY_ERI, MEDIUM, 7000, 3),
                                       (RESERVOIR_LOW, LOW, 20600, 2)):
        c, m, b, led, ev = make()
        m.raise_alarm(code, c.now)
        s = sample(c, m, 2 * period)
        tones = [t for t, _ in s]
        assert set(tones) == {0, alarms.TONE_HZ[prio]}
        n = period // 10
        assert edges(tones[:n]) == pulses, (alarms.NAMES[code], edges(tones[:n]))
        assert tones[:n] == tones[n:2 * n]  # repeats
    # the high burst rhythm: 3 pulses, a double gap, 2 pulses, a pause, then again
    c, m, b, led, ev = make()
    m.raise_alarm(OCCLUSION, c.now)
    tones = [t for t, _ in sample(c, m, 3500)]
    starts = [i * 10 for i in range(1, len(tones)) if tones[i] and not tones[i - 1]]
    assert [0] + starts == [0, 250, 500, 1050, 1300, 2150, 2400, 2650, 3200, 3450]


def test_led_follows_the_visual_signal():
    c, m, b, led, ev = make()
    m.raise_alarm(BATTERY_LOW, c.now)
    assert all(lit == 1 for _, lit in sample(c, m, 3000))  # low: constant
    m.raise_alarm(BATTERY_ERI, c.now)
    s = [lit for _, lit in sample(c, m, 3200)]
    assert edges(s) == 2 and 150 <= sum(s) <= 170  # medium: 0.625 Hz, 50 % duty
    m.raise_alarm(OCCLUSION, c.now)
    s = [lit for _, lit in sample(c, m, 1000)]
    assert edges(s) == 2 and sum(s) == 50  # high: 2 Hz, 50 % duty


def test_highest_priority_sounds_and_the_burst_restarts_on_change():
    c, m, b, led, ev = make()
    m.raise_alarm(BATTERY_ERI, c.now)
    sample(c, m, 1000)
    m.raise_alarm(OCCLUSION, c.now)
    assert m.tick(c.now) == alarms.TONE_HZ[HIGH] and m.highest() == HIGH
    m.ack(OCCLUSION, c.now)
    assert m.tick(c.now) == alarms.TONE_HZ[MEDIUM]  # the medium one's burst starts at once


def test_unacknowledged_alarms_escalate():
    c, m, b, led, ev = make()
    m.raise_alarm(BATTERY_ERI, c.now)
    for _ in range(119):
        c.advance(1000)
        m.tick(c.now)
    assert ("escalate", "BATTERY_ERI") not in ev
    c.advance(1000)
    m.tick(c.now)
    assert ev[-1] == ("escalate", "BATTERY_ERI")
    assert m.active()[0]["escalated"] is True
    s = sample(c, m, 7600)
    tones = [t for t, _ in s]
    assert edges(tones) == 10 and max(tones) == alarms.TONE_HZ[HIGH]  # now the high pattern
    m.ack(BATTERY_ERI, c.now)
    assert m.tick(c.now) == 0
    # low escalates after 15 minutes to the medium pattern; ack time does not count
    c, m, b, led, ev = make()
    m.raise_alarm(RESERVOIR_LOW, c.now)
    for _ in range(899):
        c.advance(1000)
        m.tick(c.now)
    assert not m.active()[0]["escalated"]
    c.advance(1000)
    m.tick(c.now)
    assert m.active()[0]["escalated"]
    tones = [t for t, _ in sample(c, m, 7000)]
    assert edges(tones) == 3 and max(tones) == alarms.TONE_HZ[MEDIUM]


def test_active_and_recent_lists():
    c, m, b, led, ev = make()
    m.raise_alarm(BATTERY_LOW, c.now)
    c.advance(2000)
    m.raise_alarm(STALL, c.now)
    c.advance(1000)
    m.raise_alarm(OCCLUSION, c.now)
    a = m.active()
    assert [x["code"] for x in a] == ["STALL", "OCCLUSION", "BATTERY_LOW"]  # priority, then oldest
    assert a[2] == {"code": "BATTERY_LOW", "priority": "low", "latching": False, "present": True,
                    "acked": False, "escalated": False, "since_s": 0}
    assert a[0]["since_s"] == 2 and a[1]["since_s"] == 3
    r = m.recent()
    assert [(x["code"], x["event"]) for x in r] == [("OCCLUSION", "raise"), ("STALL", "raise"),
                                                     ("BATTERY_LOW", "raise")]
    for _ in range(20):
        m.raise_alarm(BATTERY_LOW, c.now)
        m.clear_condition(BATTERY_LOW, c.now)
    r = m.recent()
    assert len(r) == 16 and r[0] == {"code": "BATTERY_LOW", "event": "clear", "t_s": 3}


def test_ack_all():
    c, m, b, led, ev = make()
    m.raise_alarm(OCCLUSION, c.now)
    m.raise_alarm(BATTERY_LOW, c.now)
    m.clear_condition(OCCLUSION, c.now)
    assert m.ack_all(c.now) == 2
    assert not m.is_active(OCCLUSION) and m.is_active(BATTERY_LOW)
    assert m.tick(c.now) == 0


def test_bad_code_is_rejected():
    c, m, b, led, ev = make()
    for bad in (-1, 13, "OCCLUSION", None):
        e = raises(ValueError, m.raise_alarm, bad, c.now)
        assert "alarm code" in str(e)
    assert m.highest() == 0 and ev == []


def test_devices_are_driven_only_on_change_and_across_the_tick_wrap():
    c, m, b, led, ev = make(start=TICKS_PERIOD - 3000)
    m.raise_alarm(BATTERY_ERI, c.now)
    s = sample(c, m, 14000)  # crosses 2**30 after 3 s
    assert c.now < 20000
    assert edges([t for t, _ in s]) == 6  # two medium bursts, unbroken by the wrap
    assert b.calls[:2] == [800, 0] and len(b.calls) == 12
    leds = [0] + [lit for _, lit in s]
    assert len(led.calls) == sum(1 for i in range(1, len(leds)) if leds[i] != leds[i - 1])
    assert m.uptime_s == 13


def test_a_failing_listener_does_not_stop_the_alarm():
    c, m, b, led, ev = make()

    def broken(kind, code):
        raise OSError("log full")

    m.add_listener(broken)
    m.add_listener(lambda kind, code: ev.append(("second", alarms.NAMES[code])))
    m.raise_alarm(OCCLUSION, c.now)
    assert m.listener_errors == 1 and m.is_active(OCCLUSION)
    assert ev == [("raise", "OCCLUSION"), ("second", "OCCLUSION")]
    assert m.tick(c.now) == alarms.TONE_HZ[HIGH]
