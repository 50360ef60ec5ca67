# Line safety apart from delivery (line.py): a board without a pressure sensor has no detector, a finding
# stops the pump with the halt its alarm names in the halt table, and the pump, its line and its dosing
# keep the attributes their __init__ declared through therapy, an index edge, a stall and its ack
# (CPython and micropython).
import pytest
from test_rotor import ROTOR_SPP_MILLI, rotor_rig

from fakes import FakePumpBoard, raises
from itpump import alarms, halts, line, pump

pytestmark = pytest.mark.micropython


def _names(obj):
    return sorted(obj.__dict__.keys())


def test_no_pressure_sensor_no_detector():
    b = FakePumpBoard()
    b.pressure = None
    p = pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None, b.calibration)
    assert p.line.occ is None and p.line.status()["occlusion"] is None and not p.line.sensor_fault()


def test_a_pump_built_without_a_detector_does_not_watch_the_line():
    b = FakePumpBoard()  # a pressure sensor is fitted
    p = pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None, detector=False)
    assert p.line.occ is None and p.line.status()["occlusion"] is None
    assert pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None).line.occ is not None


def test_a_stopped_motor_drops_what_was_asked_and_never_emitted():
    b = FakePumpBoard()
    p = pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None, b.calibration)
    ln = p.line
    ln.asked, ln.confirmed, ln.move_n, ln.occ.pending = 40, 12, 28, 28
    ln.motor_stopped()
    assert (ln.asked, ln.confirmed, ln.move_n, ln.occ.pending) == (12, 12, 0, 0)
    calls = []
    ln.motor_stopped = lambda: calls.append(1)  # the pump's halt tells the line, which keeps its counts
    p.halt_motor()
    assert calls == [1]
    b.pressure = None
    bare = pump.Pump(b, alarms.AlarmManager(b.clock), 20000, None, b.calibration).line
    bare.asked = 5
    bare.motor_stopped()  # no detector: the counts still drop
    assert bare.asked == 0 and bare.move_n == 0


def test_a_bad_line_calibration_is_named():
    b = FakePumpBoard()
    b.calibration["noise_pa"] = -1
    e = raises(ValueError, pump.Pump, b, alarms.AlarmManager(b.clock), 20000, None, b.calibration)
    assert "noise_pa" in str(e)


def test_a_finding_stops_with_the_halt_its_alarm_names():
    r = rotor_rig()
    p = r.a.pump
    r.run_ms(60000)
    assert p.running()
    p.safety_stop(alarms.LEAK, 1, 0)
    assert p.halt == halts.H_LEAK and r.a.alarms.is_active(alarms.LEAK) and not r.b.motor.enabled
    r.close()


def test_every_attribute_is_declared_in_init():
    r = rotor_rig(FakePumpBoard(rotor_spp_milli=ROTOR_SPP_MILLI))
    p = r.a.pump
    parts = (p, p.line, p.dosing)
    before = [_names(o) for o in parts]
    r.run_ms(900000)  # past the first index edges
    assert p.idx.edges >= 2 and p.dosing.phase_known
    r.b.rotor.stick(True)  # a silent stall, then its acknowledgement
    r.run_ms(600000)
    assert p.halt & halts.H_STALL
    r.b.rotor.stick(False)
    r.ok("ack", {"code": "STALL"})
    r.run_ms(60000)
    assert p.running()
    assert [_names(o) for o in parts] == before
    assert isinstance(p.line, line.Line)
    r.close()
