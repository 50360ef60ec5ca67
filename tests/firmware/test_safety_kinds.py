# SAFETY record kinds: each halts.S_* and line.S_* constant is the position of its name in
# eventlog.SAFETY_KINDS (the names pumpctl logs and stored logs read), and a safety stop logs the kind it
# is given (CPython and micropython). The line's other kinds (_S_OCCLUSION ..) are private to line.py;
# test_app_safety and test_rotor read them back from the log.
import pytest

from itpump import alarms, eventlog, halts, line, pump

pytestmark = pytest.mark.micropython

WANT = (
    (0, "occlusion"),
    (1, "leak"),
    (line.S_STALL, "stall"),
    (3, "sensor"),
    (4, "cleared"),
    (halts.S_BATTERY_EOS, "battery_eos"),
    (halts.S_BOOT_LOOP, "boot_loop"),
    (halts.S_SERVICE, "service"),
    (halts.S_RESUME, "resume"),
    (halts.S_LATE_TASK, "late_task"),
    (line.S_RESET, "occlusion_reset"),
)


def test_each_kind_constant_names_its_entry():
    assert len(eventlog.SAFETY_KINDS) == len(WANT)
    for kind, name in WANT:
        assert eventlog.SAFETY_KINDS[kind] == name, (kind, name)


class _Log:
    def __init__(self):
        self.kinds = []

    def append_raw(self, code, data):
        assert code == eventlog.SAFETY
        self.kinds.append(eventlog.SAFETY_KINDS[data[0]])


class _Line:
    pressure_pa = 0


class _Stopped:
    def __init__(self):
        self.log = _Log()
        self.line = _Line()
        self.stops = []

    def log_safety(self, kind, pressure_pa, nl):
        pump.Pump.log_safety(self, kind, pressure_pa, nl)

    def stop(self, bit, alarm):
        self.stops.append((bit, alarm))


def test_a_safety_stop_logs_the_kind_it_is_given():
    p = _Stopped()
    leak = eventlog.SAFETY_KINDS.index("leak")
    sensor = eventlog.SAFETY_KINDS.index("sensor")
    pump.Pump.safety_stop(p, alarms.LEAK, leak, 0)
    pump.Pump.safety_stop(p, alarms.SENSOR_FAULT, sensor, 0)
    assert p.log.kinds == ["leak", "sensor"]
    assert p.stops == [(halts.H_LEAK, alarms.LEAK), (halts.H_SENSOR, alarms.SENSOR_FAULT)]
