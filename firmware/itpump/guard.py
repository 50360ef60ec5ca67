# Independent dose guard: hard maximum rate and rolling 1 h / 24 h maxima over delivered (confirmed)
# microsteps, basal and boluses together. Imports nothing from therapy/dosing on purpose: it must stay
# correct when they are wrong. Why the bucket rings are exact and conservative: docs/dosing.md.
from array import array

from micropython import const

from itpump import check_int

H1_BUCKET_MS = const(60000)  # 1 h window: 60 buckets of 1 min
_H1_BUCKETS = const(60)
D1_BUCKET_MS = const(900000)  # 24 h window: 96 buckets of 15 min
_D1_BUCKETS = const(96)
RATE_BURST_MS = const(1000)  # token bucket depth: one second of the hard rate
MS_PER_H = const(3600000)
MAX_RATE_STEPS_PER_H = const(1000000)  # keeps burst_ms * rate < 2**30 (1e6 steps/h = 20 mL/h at 20 nL/step)
MAX_WINDOW_STEPS = const(1 << 28)  # limits stay small ints with room for a runaway overshoot

# violation() bits
V_RATE = const(1)
V_1H = const(2)
V_24H = const(4)

_STATE_VERSION = const(1)


class Limits:
    """Validated limits in microsteps. Build from volumes with from_nl() (rounds limits DOWN)."""

    def __init__(self, max_rate_steps_per_h, max_1h_steps, max_24h_steps):
        check_int("max_rate_steps_per_h", max_rate_steps_per_h, 1, MAX_RATE_STEPS_PER_H)
        check_int("max_1h_steps", max_1h_steps, 1, MAX_WINDOW_STEPS)
        check_int("max_24h_steps", max_24h_steps, 1, MAX_WINDOW_STEPS)
        if max_1h_steps > max_24h_steps:
            raise ValueError("max_1h_steps (%d) exceeds max_24h_steps (%d)" % (max_1h_steps, max_24h_steps))
        self.max_rate_steps_per_h = max_rate_steps_per_h
        self.max_1h_steps = max_1h_steps
        self.max_24h_steps = max_24h_steps

    @staticmethod
    def from_nl(pl_per_step, max_rate_nl_per_h, max_1h_nl, max_24h_nl):
        """Volumes in nL -> whole microsteps, rounded down so the volume limit itself is never exceeded."""
        check_int("pl_per_step", pl_per_step, 1, 1 << 29)
        for name, v in (("max_rate_nl_per_h", max_rate_nl_per_h), ("max_1h_nl", max_1h_nl),
                        ("max_24h_nl", max_24h_nl)):
            check_int(name, v, 1, 1 << 40)
        return Limits(max_rate_nl_per_h * 1000 // pl_per_step, max_1h_nl * 1000 // pl_per_step,
                      max_24h_nl * 1000 // pl_per_step)

    def to_dict(self):
        return {"max_rate_steps_per_h": self.max_rate_steps_per_h, "max_1h_steps": self.max_1h_steps,
                "max_24h_steps": self.max_24h_steps}


class _Ring:
    """Time buckets for one rolling window: counts per bucket, running total, position in the bucket."""

    def __init__(self, bucket_ms, window_buckets):
        self.bucket_ms = bucket_ms
        self.n = window_buckets + 1  # the window plus the bucket being filled
        self.counts = array("i", [0] * self.n)
        self.idx = 0  # bucket being filled
        self.off_ms = 0  # ms elapsed in it
        self.total = 0

    def advance(self, dt_ms):
        # dt_ms in 0..2**29: off_ms + dt_ms < 2**30
        off = self.off_ms + dt_ms
        if off < self.bucket_ms:
            self.off_ms = off
            return
        k = off // self.bucket_ms
        self.off_ms = off - k * self.bucket_ms
        if k >= self.n:  # the whole window has passed: everything in it has aged out
            self._clear(k)
            return
        counts = self.counts
        n = self.n
        i = self.idx
        while k:
            i += 1
            if i == n:
                i = 0
            self.total -= counts[i]
            counts[i] = 0
            k -= 1
        self.idx = i

    def _clear(self, k):
        counts = self.counts
        for j in range(self.n):
            counts[j] = 0
        self.total = 0
        self.idx = (self.idx + k) % self.n

    def add(self, steps):
        self.counts[self.idx] += steps
        self.total += steps

    def to_dict(self):
        return {"bucket_ms": self.bucket_ms, "counts": list(self.counts), "idx": self.idx,
                "off_ms": self.off_ms}

    def load(self, d, name):
        if not isinstance(d, dict):
            raise ValueError("%s: expected a dict" % name)
        if d.get("bucket_ms") != self.bucket_ms:
            raise ValueError("%s.bucket_ms is %r, this firmware uses %d" % (name, d.get("bucket_ms"), self.bucket_ms))
        counts = d.get("counts")
        if not isinstance(counts, list) or len(counts) != self.n:
            raise ValueError("%s.counts must be a list of %d integers" % (name, self.n))
        for c in counts:
            check_int(name + ".counts[]", c, 0, MAX_WINDOW_STEPS)
        idx = check_int(name + ".idx", d.get("idx"), 0, self.n - 1)
        off = check_int(name + ".off_ms", d.get("off_ms"), 0, self.bucket_ms - 1)
        total = 0
        for c in counts:
            total += c
        check_int(name + " total", total, 0, MAX_WINDOW_STEPS)
        return counts, idx, off, total

    def apply(self, loaded):
        counts, idx, off, total = loaded
        for j in range(self.n):
            self.counts[j] = counts[j]
        self.idx = idx
        self.off_ms = off
        self.total = total


class Guard:
    def __init__(self, limits, clock, now_ms=None):
        if not isinstance(limits, Limits):
            raise ValueError("limits must be a guard.Limits")
        self.limits = limits
        self._clock = clock
        self._last = clock.ticks_ms() if now_ms is None else now_ms
        self._h1 = _Ring(H1_BUCKET_MS, _H1_BUCKETS)
        self._d1 = _Ring(D1_BUCKET_MS, _D1_BUCKETS)
        self._set_rate(limits)
        self._credit = self._burst  # whole steps of rate credit; negative after a runaway
        self._frac = 0  # fractional credit in 1/3.6e6 step
        self._violation = 0

    def _set_rate(self, limits):
        self._rate = limits.max_rate_steps_per_h
        b = self._rate * RATE_BURST_MS // MS_PER_H
        self._burst = b if b > 0 else 1

    def set_limits(self, limits):
        """New limits apply at once; the delivery already counted stays counted."""
        if not isinstance(limits, Limits):
            raise ValueError("limits must be a guard.Limits")
        self.limits = limits
        self._set_rate(limits)
        if self._credit > self._burst:
            self._credit = self._burst
            self._frac = 0

    # -- time ----------------------------------------------------------------
    def _advance(self, now_ms):
        dt = self._clock.ticks_diff(now_ms, self._last)
        if dt <= 0:
            # Same tick, or the clock went back (or calls > 2**29 ms apart): count no elapsed time,
            # keep the later reference. Less elapsed time = drug stays counted longer = safe side.
            return
        self._last = now_ms
        self._h1.advance(dt)
        self._d1.advance(dt)
        if self._credit < self._burst:
            if dt > RATE_BURST_MS:
                dt = RATE_BURST_MS
            f = self._frac + dt * self._rate  # < 1e9 + 3.6e6 < 2**30
            whole = f // MS_PER_H
            self._frac = f - whole * MS_PER_H
            c = self._credit + whole
            if c >= self._burst:
                c = self._burst
                self._frac = 0
            self._credit = c

    # -- per tick ------------------------------------------------------------
    def allowance(self, now_ms, in_flight_steps=0):
        """Most microsteps that may be issued now. in_flight_steps: issued but not yet confirmed."""
        self._advance(now_ms)
        if self._violation:
            return 0
        a = self._credit
        r = self.limits.max_1h_steps - self._h1.total
        if r < a:
            a = r
        r = self.limits.max_24h_steps - self._d1.total
        if r < a:
            a = r
        a -= in_flight_steps
        return a if a > 0 else 0

    def record(self, steps, now_ms):
        """Count microsteps the driver CONFIRMED. Returns the violation bits (0 when all is well)."""
        self._advance(now_ms)
        if steps <= 0:
            return self._violation
        if steps > MAX_WINDOW_STEPS:
            # a glitched or runaway count: clamp so the 32-bit buckets cannot wrap (it is over every
            # limit anyway and latches a violation below)
            steps = MAX_WINDOW_STEPS
        self._h1.add(steps)
        self._d1.add(steps)
        self._credit -= steps
        v = self._violation
        if self._credit < 0:
            v |= V_RATE
        if self._h1.total > self.limits.max_1h_steps:
            v |= V_1H
        if self._d1.total > self.limits.max_24h_steps:
            v |= V_24H
        self._violation = v
        return v

    def violation(self):
        """Latched bits V_RATE | V_1H | V_24H: confirmed delivery went past a limit (e.g. motor runaway).
        While set, allowance() is 0; the app stops the motor and raises DOSE_GUARD."""
        return self._violation

    def clear_violation(self):
        """After the alarm was handled (clinician ack). Counted delivery stays counted."""
        self._violation = 0

    # -- reporting (not per tick) ------------------------------------------------
    def delivered_1h_steps(self, now_ms=None):
        """Counted in the 1 h ring (conservative: may include up to one bucket older than 1 h)."""
        if now_ms is not None:
            self._advance(now_ms)
        return self._h1.total

    def delivered_24h_steps(self, now_ms=None):
        if now_ms is not None:
            self._advance(now_ms)
        return self._d1.total

    def status(self, now_ms):
        self._advance(now_ms)
        return {"delivered_1h_steps": self._h1.total, "delivered_24h_steps": self._d1.total,
                "limits": self.limits.to_dict(), "allowance_steps": self.allowance(now_ms),
                "violation": self._violation}

    # -- persistence -------------------------------------------------------------
    def to_dict(self, now_ms=None):
        """State for the store. Persist it often: delivery after the last save is unknown after a reset."""
        if now_ms is not None:
            self._advance(now_ms)
        return {"v": _STATE_VERSION, "h1": self._h1.to_dict(), "d1": self._d1.to_dict(),
                "violation": self._violation}

    def from_dict(self, d, now_ms=None, unrecorded_steps=0):
        """Restore after a reboot. The length of the gap is unknown (no RTC), so assume none passed:
        nothing delivered before the reset ages out early. The rate credit restarts empty (as if the
        last second was spent at full rate). unrecorded_steps: worst case delivered after the snapshot
        (e.g. issued-but-unconfirmed steps, or rate x save interval): counted now, never forgotten.
        Bad state raises ValueError naming the field and changes nothing."""
        if not isinstance(d, dict):
            raise ValueError("guard state: expected a dict")
        if d.get("v") != _STATE_VERSION:
            raise ValueError("guard state: version %r, expected %d" % (d.get("v"), _STATE_VERSION))
        h1 = self._h1.load(d.get("h1"), "h1")
        d1 = self._d1.load(d.get("d1"), "d1")
        viol = check_int("violation", d.get("violation", 0), 0, V_RATE | V_1H | V_24H)
        check_int("unrecorded_steps", unrecorded_steps, 0, MAX_WINDOW_STEPS)
        self._h1.apply(h1)
        self._d1.apply(d1)
        self._last = self._clock.ticks_ms() if now_ms is None else now_ms
        self._credit = 0
        self._frac = 0
        self._violation = viol
        if unrecorded_steps:
            self._h1.add(unrecorded_steps)
            self._d1.add(unrecorded_steps)
            if self._h1.total > self.limits.max_1h_steps:
                self._violation |= V_1H
            if self._d1.total > self.limits.max_24h_steps:
                self._violation |= V_24H

    def assume_full(self, now_ms=None):
        """Guard state lost or corrupt: assume both windows are at their limits (nothing more may be
        given until they drain). The safe choice; whether to accept it is the clinician's call."""
        self._last = self._clock.ticks_ms() if now_ms is None else now_ms
        for ring, lim in ((self._h1, self.limits.max_1h_steps), (self._d1, self.limits.max_24h_steps)):
            for j in range(ring.n):
                ring.counts[j] = 0
            ring.counts[ring.idx] = lim
            ring.total = lim
            ring.off_ms = 0
        self._credit = 0
        self._frac = 0
