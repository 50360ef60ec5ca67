# Battery monitor: mV samples -> OK / LOW / ERI (elective replacement indicator) / EOS (end of service),
# per-cell thresholds on a moving mean with hysteresis; ERI and EOS latch. An implausible reading is
# UNKNOWN (SENSOR_FAULT), never OK. update() allocates nothing. Thresholds and why: docs/hardware.md.
from array import array

from micropython import const

from itpump import alarms, check_int, halts

OK = const(0)
LOW = const(1)
ERI = const(2)
EOS = const(3)
UNKNOWN = const(4)  # reported only (status): no plausible reading yet, or the last one was implausible
STATE_NAMES = ("OK", "LOW", "ERI", "EOS", "UNKNOWN")
ALARM_FOR = (-1, alarms.BATTERY_LOW, alarms.BATTERY_ERI, alarms.BATTERY_EOS)

_MAX_PLAUSIBLE_MV = const(10000)  # above this the reading is a sensor fault, not a battery
_MIN_PLAUSIBLE_MV = const(1800)  # below this too: the RP2040's minimum VSYS (RP2040 / Pico datasheets)


class BatteryMonitor:
    def __init__(self, cells=3, low_mv_per_cell=1200, eri_mv_per_cell=1100, eos_mv_per_cell=1000,
                 hyst_mv_per_cell=25, replaced_mv_per_cell=1400, n_avg=8):
        check_int("cells", cells, 1, 6)
        check_int("n_avg", n_avg, 1, 64)
        check_int("hyst_mv_per_cell", hyst_mv_per_cell, 0, 500)
        check_int("eos_mv_per_cell", eos_mv_per_cell, 1, 5000)
        if eos_mv_per_cell * cells <= _MIN_PLAUSIBLE_MV:
            raise ValueError("eos %d mV for %d cells is below the plausible floor %d mV" % (
                eos_mv_per_cell * cells, cells, _MIN_PLAUSIBLE_MV))
        if not (eos_mv_per_cell < eri_mv_per_cell < low_mv_per_cell < replaced_mv_per_cell):
            raise ValueError("thresholds must rise: eos %r < eri %r < low %r < replaced %r mV/cell" % (
                eos_mv_per_cell, eri_mv_per_cell, low_mv_per_cell, replaced_mv_per_cell))
        if low_mv_per_cell + hyst_mv_per_cell >= replaced_mv_per_cell:
            raise ValueError("low + hysteresis must stay below the replaced-pack level")
        self.low_mv = low_mv_per_cell * cells
        self.eri_mv = eri_mv_per_cell * cells
        self.eos_mv = eos_mv_per_cell * cells
        self.hyst_mv = hyst_mv_per_cell * cells
        self.replaced_mv = replaced_mv_per_cell * cells
        self._buf = array("i", [0] * n_avg)
        self._i = -1  # the window's next slot; -1 before the first sample
        self._sum = 0
        self.state = OK
        self.avg_mv = 0
        self.fault = False  # last sample implausible (not averaged): SENSOR_FAULT for the app
        self.last_mv = 0  # the last sample, plausible or not

    def update(self, mv):
        """Take one sample in mV; returns the state judged from the plausible ones (OK/LOW/ERI/EOS)."""
        self.last_mv = mv
        if mv < _MIN_PLAUSIBLE_MV or mv > _MAX_PLAUSIBLE_MV:
            self.fault = True
            return self.state
        self.fault = False
        avg = self._average(mv)
        self.avg_mv = avg
        if avg < self.eos_mv:
            worse = EOS
        elif avg < self.eri_mv:
            worse = ERI
        elif avg < self.low_mv:
            worse = LOW
        else:
            worse = OK
        st = self.state
        if worse > st:
            st = worse
        elif st >= ERI:
            if avg >= self.replaced_mv:  # a fresh pack
                st = OK
        elif st == LOW and avg >= self.low_mv + self.hyst_mv:
            st = OK
        self.state = st
        return st

    def _average(self, mv):
        """A plausible sample into the moving window; returns the window's mean."""
        n = len(self._buf)
        i = self._i
        if i < 0:  # first sample fills the window: no false EOS from an empty average
            for j in range(n):
                self._buf[j] = mv
            self._sum = mv * n
            self._i = 0
        else:
            self._sum += mv - self._buf[i]
            self._buf[i] = mv
            i += 1
            self._i = 0 if i == n else i
        return self._sum // n

    def alarm(self):
        """Alarm code for the current state, or -1 when OK."""
        return ALARM_FOR[self.state]

    def shown_state(self):
        """The state as the reading supports it: UNKNOWN while the last one was implausible or before
        the first plausible one (alarms follow `state`, which an implausible reading leaves alone)."""
        return UNKNOWN if self.fault or self._i < 0 else self.state

    def status(self):
        return {"state": STATE_NAMES[self.shown_state()], "avg_mv": self.avg_mv, "fault": self.fault,
                "reading_mv": self.last_mv}


# Packs a board may name in its calibration ("battery": name). LIION_1S is the default: docs/hardware.md
# powers the boards from a 1S Li-ion cell (3.0-4.2 V), like the sim's plant (an INR18650-35E). Per-cell
# mV read off that cell's 0.2 C discharge curve (plant.py's table): LOW 3.60 V ~ 20 % left, ERI 3.45 V
# ~ 8 %, EOS 3.30 V ~ 4 %, well above the protection cutoff (2.5-3.0 V) so the motor's current pulses
# and the last flash writes still have margin; a pack reading >= 4.0 V (~80 %) is a fresh one.
# ALKALINE_3AA: the thresholds argued in this module's header. (name, BatteryMonitor arguments) pairs: a
# const in flash, where dicts would be heap.
_PACKS = const((
    ("liion_1s", (("cells", 1), ("low_mv_per_cell", 3600), ("eri_mv_per_cell", 3450), ("eos_mv_per_cell", 3300),
                  ("replaced_mv_per_cell", 4000))),
    ("alkaline_3aa", (("cells", 3),)),
))


def from_calibration(cal):
    """A BatteryMonitor for a board's calibration dict: "battery" names a pack in _PACKS (default
    "liion_1s"); battery_low_mv_per_cell / _eri_ / _eos_ / _replaced_ override a threshold.
    ValueError names a bad value."""
    name = cal.get("battery", "liion_1s")
    kw = None
    for pack, args in _PACKS:
        if pack == name:
            kw = dict(args)
    if kw is None:
        raise ValueError("battery %r unknown (known: %s)" % (name, ", ".join(sorted(p[0] for p in _PACKS))))
    for k in ("low", "eri", "eos", "replaced"):
        key = "battery_%s_mv_per_cell" % k
        if key in cal:
            kw[k + "_mv_per_cell"] = cal[key]
    return BatteryMonitor(**kw)


class Watch:
    """The board's battery sensor read into a monitor once a second of uptime: the state raises its
    alarm, an implausible reading SENSOR_FAULT, and at EOS delivery stops and the state is saved."""

    def __init__(self, battery, batt, pump, alarms):
        self.battery = battery  # the board's sensor
        self.batt = batt  # BatteryMonitor
        self.pump = pump
        self.alarms = alarms
        self.mv = 0  # the last plausible reading
        self._s = -1  # the uptime second last sampled

    def check(self, uptime_s):
        if uptime_s == self._s:
            return
        self._s = uptime_s
        batt = self.batt
        p = self.pump
        was = batt.state
        mv = self._read_mv()
        st = batt.update(mv)
        if batt.fault:
            if not p.other_sensor_fault:
                p.other_sensor_fault = True
                self.alarms.raise_alarm(alarms.SENSOR_FAULT)  # the battery cannot be judged: say so
        else:
            self.mv = mv
            if p.other_sensor_fault:
                p.other_sensor_fault = False
                if not p.line.sensor_fault():
                    p.condition_gone(alarms.SENSOR_FAULT)
        if st != was:
            self._changed(st)
        if st == EOS and not p.halt & halts.H_BATTERY:
            self._end_of_service()

    def _read_mv(self):
        try:
            return self.battery.read_mv()
        except Exception:
            return 0  # unreadable: the monitor's fault path

    def _changed(self, st):
        """The state moved to st: its alarm raised, the others' conditions gone."""
        for s in (LOW, ERI, EOS):
            if s != st:
                code = ALARM_FOR[s]
                if self.alarms.is_present(code):
                    self.alarms.clear_condition(code)
        if st != OK:
            self.alarms.raise_alarm(ALARM_FOR[st])
        halts.release_inactive(self.pump)

    def _end_of_service(self):
        """Stop while the motor and flash still have margin, and save the state now."""
        p = self.pump
        p.log_safety(halts.S_BATTERY_EOS, 0, self.batt.avg_mv)
        p.stop(halts.H_BATTERY, alarms.BATTERY_EOS)
        p.need_save = True
