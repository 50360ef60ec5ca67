# The safety modules wired into the running app (CPython and micropython): occlusion / leak / sensor in
# the pump's tick, the battery monitor in housekeeping, the supervisor's check-ins, boot-loop guard and
# intentional-reset marker, the service op.
import json
import struct

import pytest
from test_app import FILL, RX, RX_PB, Rig, programmed

from fakes import FakePumpBoard, heap_lock_pair
from itpump import alarms, app, eventlog, halts, store

pytestmark = pytest.mark.micropython

ARMED_MS = 40000  # the detector learns its baseline over 256 ticks before it may alarm


def safety(r):
    """SAFETY records as (kind name, pressure_pa, volume_nl)."""
    out = []
    for c, d in r.events():
        if c == eventlog.SAFETY:
            k, pa, nl = struct.unpack(eventlog.CODES[c][1], d)
            out.append((eventlog.SAFETY_KINDS[k], pa, nl))
    return out


def alarm_events(r):
    lines = [json.loads(x) for x in r.b.serial.lines()]
    return [(m["kind"], m["code"]) for m in lines if m.get("event") == "alarm"]


def run_until(r, cond, max_ms, step_ms=100):
    t = 0
    while t < max_ms:
        r.run_ms(step_ms)
        t += step_ms
        if cond():
            return t
    raise AssertionError("condition not met within %d ms" % max_ms)


def occluded(r):
    r.run_ms(ARMED_MS)
    assert r.a.pump.line.occ.armed() and r.a.pump.running()
    r.b.serial.lines()
    r.b.pressure.occluded = True
    t = run_until(r, lambda: r.a.pump.halt & halts.H_OCCLUSION, 120000)
    return t


# -- occlusion ---------------------------------------------------------------------------------------
def test_occlusion_stops_the_motor_raises_the_alarm_and_logs():
    r = programmed()
    t = occluded(r)
    assert t < 60000, t  # ~0.55 steps/s of 33 Pa stairs against 12 Pa noise
    a = r.a
    assert ("raise", "OCCLUSION") in alarm_events(r)  # the unsolicited event line
    st = r.read("status")
    assert not r.b.motor.enabled and not st["running"] and "occlusion" in st["halt"]
    assert "OCCLUSION" in st["alarms"] and st["occlusion"] == "occlusion"
    assert st["line"]["occlusion"]["state"] == "occlusion" and st["pressure_pa"] > 2000
    assert (eventlog.ALARM_RAISED, bytes([alarms.OCCLUSION])) in r.events()
    rec = [x for x in safety(r) if x[0] == "occlusion"]
    assert len(rec) == 1 and rec[0][1] > 2000 and rec[0][2] >= 40  # >= 2 steps missed
    emitted = r.b.motor.emitted
    r.run_ms(10000)
    assert r.b.motor.emitted == emitted and a.pump.halt & halts.H_OCCLUSION  # stays stopped
    r.close()


def test_acknowledged_occlusion_resumes_when_it_clears_and_logs_the_released_bolus():
    r = programmed()
    occluded(r)
    r.ok("ack", {"code": "OCCLUSION"})  # silenced, but the line is still blocked: no delivery
    r.run_ms(5000)
    assert r.a.pump.halt & halts.H_OCCLUSION and not r.b.motor.enabled
    assert r.a.alarms.is_active(alarms.OCCLUSION)
    r.b.pressure.occluded = False  # the blockage goes: the stored volume drains into the patient
    run_until(r, lambda: not r.a.pump.halt & halts.H_OCCLUSION, 30000)
    rec = [x for x in safety(r) if x[0] == "cleared"]
    assert len(rec) == 1 and rec[0][2] > 0, rec  # the released bolus, nL
    assert not r.a.alarms.is_active(alarms.OCCLUSION)
    r.run_ms(5000)
    assert r.b.motor.enabled and r.read("status")["running"]
    r.close()


def test_a_cleared_occlusion_waits_for_the_clinician():
    r = programmed()
    occluded(r)
    r.b.pressure.occluded = False
    run_until(r, lambda: any(x[0] == "cleared" for x in safety(r)), 30000)
    r.run_ms(5000)
    assert r.a.pump.halt & halts.H_OCCLUSION and not r.b.motor.enabled  # latched
    st = r.read("status")
    assert st["line"]["occlusion"]["released_nl"] > 0 and "OCCLUSION" in st["alarms"]
    r.ok("ack", {"code": "OCCLUSION"})
    r.run_ms(3000)
    assert r.b.motor.enabled and not r.a.pump.halt
    r.close()


def test_a_new_program_relearns_the_line():
    r = programmed()
    r.run_ms(ARMED_MS)
    assert r.a.pump.line.occ.armed()
    r.ok("program", {"rx": RX})
    assert not r.a.pump.line.occ.armed()
    r.close()


def test_the_end_of_a_prime_relearns_the_line():
    r = programmed()
    r.run_ms(ARMED_MS)
    r.ok("bolus", {"kind": "prime", "duration_min": 1, "volume_nl": 5000})
    run_until(r, lambda: r.a.pump.therapy.bolus_kind is None, 120000)
    r.run_ms(200)
    assert not r.a.pump.line.occ.armed() and r.a.pump.running()
    r.close()


def test_an_occlusion_halt_survives_a_restart_until_acknowledged():
    r = programmed()
    occluded(r)
    r.b.pressure.occluded = False
    r = reboot(r, "PWRON")
    r.run_ms(3000)
    assert r.a.pump.halt & halts.H_OCCLUSION and not r.b.motor.enabled
    assert r.a.alarms.is_active(alarms.OCCLUSION)
    r.ok("ack", {"code": "OCCLUSION"})
    r.run_ms(3000)
    assert r.b.motor.enabled and not r.a.pump.halt
    r.close()


# -- pressure sensor ---------------------------------------------------------------------------------
def test_a_missing_pressure_reading_raises_sensor_fault_and_stops():
    r = programmed()
    r.run_ms(5000)
    r.b.pressure.broken = True
    r.run_ms(100)  # one glitch: not yet
    r.b.pressure.broken = False
    r.run_ms(1000)
    assert r.a.pump.running() and not r.a.alarms.is_active(alarms.SENSOR_FAULT)
    r.b.pressure.broken = True
    r.run_ms(1000)
    st = r.read("status")
    assert "SENSOR_FAULT" in st["alarms"] and "pressure_sensor" in st["halt"] and not r.b.motor.enabled
    assert any(x[0] == "sensor" for x in safety(r))
    r.ok("ack", {"code": "SENSOR_FAULT"})  # the sensor is still dead: stays stopped
    r.run_ms(1000)
    assert not r.b.motor.enabled
    r.b.pressure.broken = False
    r.run_ms(1000)
    assert r.b.motor.enabled and not r.a.pump.halt
    r.close()


def test_a_frozen_pressure_reading_is_a_sensor_fault():
    r = programmed()
    r.run_ms(5000)
    r.b.pressure.frozen = True
    r.run_ms(12000)  # 100 identical readings
    assert r.a.pump.halt & halts.H_SENSOR and r.a.alarms.is_active(alarms.SENSOR_FAULT)
    r.close()


# -- the virtual board's fast clock -------------------------------------------------------------------
def fast_ticks(r, n, gap_ms=5000):
    c = r.b.clock
    for _ in range(n):
        c.advance(gap_ms)
        r.a.poll_link()
        r.a.tick()


def test_fast_forward_ticks_never_false_alarm():
    r = programmed()
    r.run_ms(ARMED_MS)
    fast_ticks(r, 1500)  # ~2 h of virtual time at 5 s per tick
    a = r.a
    st = r.read("status")
    assert st["running"] and st["alarms"] == [] and not a.pump.halt, st["alarms"]
    assert st["line"]["gap_ticks"] >= 1500 and st["delivered_nl"] > 70000  # 40000 nL/h kept on
    r.run_ms(20000)  # back to 100 ms ticks: still quiet
    assert r.a.pump.running() and not r.a.alarms.active()
    r.close()


def test_a_gross_occlusion_is_still_caught_between_fast_ticks():
    r = programmed()
    r.run_ms(ARMED_MS)
    r.b.pressure.occluded = True
    n = 0
    while not r.a.pump.halt & halts.H_OCCLUSION:
        fast_ticks(r, 10)
        n += 10
        assert n < 400, "no alarm after %d fast ticks" % n
    # the gross limit is 10 kPa over the baseline: ~300 steps of 33 Pa at ~2.8 steps per 5 s tick
    assert r.a.alarms.is_active(alarms.OCCLUSION) and not r.b.motor.enabled
    r.close()


# -- battery ------------------------------------------------------------------------------------------
def test_battery_eri_warns_and_eos_stops_delivery_until_a_fresh_pack_and_ack():
    r = programmed()
    b = r.b
    r.run_ms(3000)
    assert r.read("status")["battery"]["state"] == "OK"
    b.battery.mv = 3500  # 1S Li-ion: ERI below 3450 once averaged, LOW below 3600
    r.run_ms(12000)
    st = r.read("status")
    assert st["battery_mv"] == 3500 and st["battery"]["state"] == "LOW" and "BATTERY_LOW" in st["alarms"]
    b.battery.mv = 3400
    r.run_ms(12000)
    st = r.read("status")
    assert st["battery"]["state"] == "ERI" and "BATTERY_ERI" in st["alarms"] and "BATTERY_LOW" not in st["alarms"]
    assert st["running"] and b.motor.enabled  # ERI: replace soon, delivery goes on
    b.battery.mv = 3200
    r.run_ms(12000)
    st = r.read("status")
    assert st["battery"]["state"] == "EOS" and "BATTERY_EOS" in st["alarms"] and "battery_eos" in st["halt"]
    assert not b.motor.enabled and any(x[0] == "battery_eos" for x in safety(r))
    r.ok("ack", {"code": "BATTERY_EOS"})  # still flat: no delivery
    r.run_ms(3000)
    assert not b.motor.enabled
    b.battery.mv = 4150  # a fresh pack
    r.run_ms(12000)
    st = r.read("status")
    assert st["battery"]["state"] == "OK" and st["alarms"] == [] and st["running"] and b.motor.enabled
    r.close()


def test_nothing_wired_on_the_battery_input_reads_unknown_with_a_sensor_fault_not_ok():
    # the chip run showed "OK, 0 mV, FAULT" with nothing wired; below 1.8 V no board could be running
    for bad_mv in (0, 1700):
        r = programmed()
        b = r.b
        b.battery.mv = bad_mv
        r.run_ms(3000)
        st = r.read("status")
        assert st["battery"]["state"] == "UNKNOWN" and st["battery"]["fault"], st["battery"]
        assert st["battery"]["reading_mv"] == bad_mv and "SENSOR_FAULT" in st["alarms"]
        assert st["running"] and b.motor.enabled  # a monitor lost, not the pump: delivery goes on
        b.battery.mv = 4000  # wired again: the state follows the reading, the alarm's condition ends
        r.run_ms(3000)
        st = r.read("status")
        assert st["battery"]["state"] == "OK" and not st["battery"]["fault"] and st["battery_mv"] == 4000
        r.ok("ack", {"code": "SENSOR_FAULT"})
        assert "SENSOR_FAULT" not in r.read("status")["alarms"]
        r.close()


# -- supervisor ---------------------------------------------------------------------------------------
def test_the_watchdog_is_fed_only_while_every_task_checks_in():
    r = programmed()
    a, b = r.a, r.b
    a.sup.start()
    r.run_ms(3000)
    fed = b.wdt.feeds
    assert fed >= 29 and a.sup.late_task() is None
    # the link task stops checking in (its loop is stuck) while the control tick goes on
    c = b.clock
    for _ in range(80):
        c.advance(100)
        a.tick()
    assert a.sup.late_task() == "link"
    assert b.wdt.feeds <= fed + 61  # fed until the 6 s deadline, then never again
    stopped = b.wdt.feeds
    r.run_ms(2000)
    assert b.wdt.feeds == stopped  # latched: the watchdog will reset the board
    assert not b.motor.enabled and a.alarms.is_active(alarms.INTERNAL)
    assert any(x[0] == "late_task" and x[2] == 1 for x in safety(r))
    r.close()


def test_each_task_id_checks_in_its_own_task():
    # app's task ids (_T_*) are the places of their tasks in _TASKS: a task stuck alone is the one the
    # supervisor names late, and the late_task record carries its place in that table
    order = ("tick", "link", "housekeeping")

    def boom(*args):
        raise RuntimeError("stuck")

    for i in range(len(order)):
        r = programmed()
        a, c = r.a, r.b.clock
        a.sup.start()
        r.run_ms(1000)
        task = order[i]
        if task == "tick":
            a.pump.tick = boom
        elif task == "housekeeping":
            a.housekeeping = boom
        for _ in range(80):
            c.advance(100)
            if task != "link":
                a.poll_link()
            a.tick()
        assert a.sup.late_task() == task
        assert [x[2] for x in safety(r) if x[0] == "late_task"] == [i], task
        r.close()


def test_a_bad_calibration_leaves_a_pump_without_a_detector_and_halted():
    b = FakePumpBoard()
    b.calibration["noise_pa"] = -1
    r = Rig(b)
    a = r.a
    assert "noise_pa" in a.cal_problem
    assert a.pump.line.occ is None and a.pump.halt & halts.H_INTERNAL and a.alarms.is_active(alarms.INTERNAL)
    r.ok("refill", FILL)
    r.ok("program", {"rx": RX})
    r.run_ms(2000)
    st = r.read("status")
    assert st["occlusion"] is None and "internal" in st["halt"] and not b.motor.enabled
    assert "noise_pa" in st["cal_problem"]
    # an unwatched line never delivers: the acknowledgement silences INTERNAL, the halt and the alarm hold
    assert "INTERNAL" in r.ok("ack", {"code": "all"})["acked"]
    emitted = b.motor.emitted
    r.run_ms(5000)
    st = r.read("status")
    assert "internal" in st["halt"] and not b.motor.enabled and b.motor.emitted == emitted
    assert a.alarms.is_active(alarms.INTERNAL)
    r.close()


def reboot(r, cause):
    r.a.log.close()
    b = FakePumpBoard(cause=cause)
    r2 = Rig(b, d=r.dir)
    r2.ctr = r.ctr
    r2.a.boot()
    return r2


def test_a_boot_loop_keeps_the_motor_off_until_a_clinician_acknowledges():
    r = programmed()
    r.run_ms(2000)
    for i in range(2):
        r = reboot(r, "WDT")
        r.run_ms(2000)
        assert r.a.pump.running() and r.a.alarms.is_active(alarms.WATCHDOG_RESET), i
    r = reboot(r, "WDT")  # the third watchdog reset in a row: safe mode
    r.run_ms(2000)
    st = r.read("status")
    assert st["boot"]["safe_mode"] and st["boot"]["wdt_resets"] == 3
    assert "safe_mode" in st["halt"] and "INTERNAL" in st["alarms"] and not r.b.motor.enabled
    assert any(x[0] == "boot_loop" and x[2] == 3 for x in safety(r))
    r = reboot(r, "PWRON")  # still in safe mode after a power cycle
    r.run_ms(1000)
    assert not r.b.motor.enabled and r.a.pump.halt & halts.H_SAFE
    r.ok("ack", {"code": "all"})
    r.run_ms(2000)
    assert r.b.motor.enabled and not r.a.pump.halt
    r = reboot(r, "WDT")
    assert r.a.boot_info["wdt_resets"] == 1 and not r.a.boot_info["safe_mode"]
    r.close()


# -- service ------------------------------------------------------------------------------------------
def test_service_suspends_safely_opens_the_repl_and_resumes_on_request():
    r = programmed(RX_PB)
    b = r.b
    r.run_ms(3000)
    r.ok("patient_bolus", role="patient")
    r.run_ms(10000)
    assert b.repl_locked and b.motor.enabled and r.a.pump.therapy.bolus_kind == "patient"
    m = r.change("service", {}, role="clinician")
    assert m["error"]["code"] == "AUTH_FORBIDDEN"
    res = r.ok("service", {}, role="service")
    assert res["repl"] == "open" and res["suspended"] and res["resume_on_restart"]
    assert res["bolus_abandoned_nl"] > 0
    assert not b.motor.enabled and not b.repl_locked  # at once, not at the next tick
    assert r.a.pump.therapy.bolus_kind is None and r.a.sup.intent
    codes = r.codes()
    assert eventlog.BOLUS_ABANDONED in codes and any(x[0] == "service" for x in safety(r))
    r.run_ms(3000)
    assert not b.motor.enabled and not b.repl_locked
    r.ok("suspend", {"on": False})
    r.run_ms(3000)
    assert b.motor.enabled and b.repl_locked and not r.a.sup.intent
    assert any(x[0] == "resume" for x in safety(r))
    r.close()


def test_a_restart_after_service_is_intentional_and_resumes_delivery():
    r = programmed()
    r.run_ms(3000)
    r.ok("service", {}, role="service")
    r = reboot(r, "WDT")  # machine.reset() after flashing reads as a watchdog reset on rp2
    assert r.a.boot_info["cause"] == "INTENTIONAL" and r.a.boot_info["wdt_resets"] == 0
    assert not r.a.alarms.is_active(alarms.WATCHDOG_RESET)
    r.run_ms(3000)
    assert r.b.motor.enabled and r.read("status")["running"]
    r.close()


# -- the tick stays allocation-free with everything wired ----------------------------------------------
def test_app_tick_allocates_nothing_between_housekeepings():
    r = programmed()
    a, c = r.a, r.b.clock
    a.sup.start()
    r.run_ms(ARMED_MS)  # armed detector, moves, checkpoint behind us
    lock, unlock = heap_lock_pair()
    moves = r.b.motor.moves
    feeds = r.b.wdt.feeds
    i = 0
    while i < 300:
        c.advance(100)
        a.poll_link()
        if a.housekeeping_due(c.ticks_ms()):  # housekeeping (once a second) may allocate: outside the lock
            a.tick()
        else:
            lock()
            try:
                a.tick()
            finally:
                unlock()
        i += 1
    assert r.b.motor.moves >= moves + 10 and a.pump.running() and r.b.wdt.feeds >= feeds + 299
    r.close()


def _mem_current():
    """Bytes allocated and not yet freed (micropython's MEM_STATS; None under CPython)."""
    try:
        import micropython
        return micropython.mem_current()
    except (ImportError, AttributeError):
        return None


def test_housekeeping_leaves_no_garbage_when_it_writes_nothing():
    # Garbage between collections fragments the heap that the tick's larger frames are taken from
    # (heap_lock cannot see those: a locked heap gives them the C stack instead).
    r = programmed()
    a, c, p = r.a, r.b.clock, r.a.pump
    r.run_ms(ARMED_MS)
    quiet = 0
    i = 0
    while i < 300:
        c.advance(100)
        a.poll_link()
        now = c.ticks_ms()
        writes = p.need_save or p.need_mark or a.doc.policy.due() or store.mark_low(p)
        if a.housekeeping_due(now) and not writes and a.time.s + 1 < a._next_gc_s:
            m0 = _mem_current()
            a.tick()
            if m0 is not None:
                assert _mem_current() == m0, "housekeeping left %d B" % (_mem_current() - m0)
            quiet += 1
        else:
            a.tick()
        i += 1
    assert quiet >= 20 and p.running()
    r.close()


class _CountingGc:
    def __init__(self, real):
        self.real = real
        self.at_s = []

    def collect(self):
        self.at_s.append(self.uptime.s)
        self.real.collect()

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_housekeeping_collects_the_heap_once_a_minute():
    r = programmed()
    a = r.a
    counting = _CountingGc(app.gc)
    counting.uptime = a.time
    app.gc = counting
    try:
        r.run_ms(300000)
    finally:
        app.gc = counting.real
    at = counting.at_s
    assert len(at) >= 4, at
    assert all(60 <= y - x <= 62 for x, y in zip(at, at[1:])), at  # a pass that wrote waits a second
    r.close()


class _Unprintable(Exception):
    def __str__(self):
        raise MemoryError("memory allocation failed")


def test_fail_safe_cannot_raise_out_of_the_loop_when_memory_runs_out():
    r = programmed()
    r.run_ms(2000)
    a = r.a
    assert r.b.motor.enabled
    real = a.alarms.raise_alarm
    calls = []

    def flaky(code, *args):  # the first raise finds no heap
        calls.append(code)
        if len(calls) == 1:
            raise MemoryError("memory allocation failed")
        return real(code, *args)

    def boom(now):
        raise _Unprintable()

    a.alarms.raise_alarm = flaky
    a.pump.tick = boom
    a.tick()  # must not raise: the loop goes on, the motor is stopped, the alarm raised on the retry
    assert a.pump.halt & halts.H_INTERNAL and not r.b.motor.enabled
    assert calls == [alarms.INTERNAL, alarms.INTERNAL] and a.alarms.is_active(alarms.INTERNAL)
    assert a.last_error == "_Unprintable"
    r.close()
