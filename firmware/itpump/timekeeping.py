# Time on the device: uptime from accumulated tick deltas (survives the 2**30 tick wrap, stays in small
# ints), the wall clock once the host sets it or a checkpoint restores it, the zone, and the time of
# day the schedule follows.
from itpump.eventlog import WallClock


class Time:
    def __init__(self, clock):
        self.clock = clock
        self._last = clock.ticks_ms()
        self.s = 0  # uptime
        self._ms = 0
        self.wall = WallClock(clock)
        self.tz_min = 0
        self.source = "uptime"  # "host" once set, "restored" from the last checkpoint
        self._tod = 0  # the last time of day seen (a new day when it goes back)

    def update(self):
        now = self.clock.ticks_ms()
        ms = self._ms + self.clock.ticks_diff(now, self._last)
        self._last = now
        if ms >= 1000:
            self.s += ms // 1000
            ms %= 1000
        self._ms = ms

    def ms(self):
        return self.s * 1000 + self._ms

    def tod_ms(self):
        """Local time of day from the wall clock."""
        return ((self.wall.now_s() + self.tz_min * 60) % 86400) * 1000

    def set(self, wall_s, tz_min, source="host"):
        """Returns the wall time before."""
        prev = self.wall.set(wall_s)
        self.tz_min = tz_min
        self.source = source
        return prev

    def new_day(self, tod_ms):
        """True once when the time of day went back past midnight."""
        new = tod_ms < self._tod
        self._tod = tod_ms
        return new
