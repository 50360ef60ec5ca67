# Rotor index sensor: one edge per roller pass -> pass starts (EDGE, the dosing phase), bounce ignored,
# silent stalls (STALL: confirmed steps with no edge) and each magnet's learnt placement.
# Steady state allocates nothing. How the gaps name the magnets: docs/dosing.md, "The rotor index".
from micropython import const

ROTOR_MASK = const(0x3FFFFFFF)  # board.rotor.edges() wraps at 2**30
# An edge read with at most this many steps confirmed since the last read is pinned (to its middle,
# within a step): its gap to the last pinned edge teaches the magnets' placement (within 2 steps; they
# sit +-16 off on the sim's head). At 100 ms ticks that is up to ~30 steps/s: a catheter prime at the
# device's maximum rate included (18.5 steps/s of 15 nL).
_PIN_BATCH = const(3)
_MATCH_MILLI = const(2500)  # a measured gap names a kept magnet within 2.5 steps (pinning: +-2)
_NONE = const(0)
EDGE = const(1)  # an accepted pass start: batch and lead say where (Pump calls dosing.index_edge)
STALL = const(2)  # too many confirmed steps without an edge


def magnets(cal):
    """index_magnets from a calibration dict (default 3, one per roller); ValueError names it."""
    k = cal.get("index_magnets", 3)
    if type(k) is not int or not 1 <= k <= 8:
        raise ValueError("index_magnets = %r: must be an int 1..8 (one magnet per roller)" % (k,))
    return k


class Index:
    def __init__(self, sensor, spp_milli, n_magnets):
        self.sensor = sensor
        self.spp_milli = spp_milli
        self.last = sensor.edges()
        self.stall_steps = spp_milli * 5 // 4000  # confirmed steps without an edge: a silent stall
        self.bounce_steps = spp_milli // 2000  # an edge sooner than this after the last one is bounce
        self.steps = 0  # confirmed steps since the last accepted edge (or boot, or a stall halt)
        self.batch = 0  # confirmed steps since the sensor was last read
        self.edge_batch = 0  # at an EDGE: the batch of the read that saw it
        self.seen = False  # an edge was accepted since boot / the last stall halt
        self.edges = 0  # accepted edges
        self.early = 0  # ignored as bounce
        self.lead = 0  # at an EDGE: steps this magnet sits after the magnets' mean
        self.n = n_magnets
        self.gap_milli = [0] * n_magnets  # gap ending at the magnet of each slot, minus a pass
        self.gap_known = [False] * n_magnets
        self.slot = 0
        self._gap_steps = -1  # confirmed steps since the read of the last pinned edge (-1: none)
        self._gap_after = 0  # milli-steps of that read after its edge
        self.saved = None  # gaps kept over a restart or a stall, until matched (_learn)

    def confirmed(self, c):
        self.steps += c
        self.batch += c
        if self._gap_steps >= 0:
            self._gap_steps += c

    def read(self):
        """_NONE, EDGE (edge_batch and lead are this edge's; the caller sets steps to the batch's steps
        after the edge) or STALL."""
        e = self.sensor.edges()
        n = (e - self.last) & ROTOR_MASK
        b = self.batch
        self.batch = 0
        if not n:
            return STALL if self.steps > self.stall_steps else _NONE
        self.last = e
        if self.seen and self.steps < self.bounce_steps:
            self.early += n
            return _NONE
        self.early += n - 1  # two pass starts in one read: one is bounce
        self.seen = True
        self.edges += 1
        self.edge_batch = b
        self.lead = 0
        if self.n > 1:
            self._place(b)
        return EDGE

    def _place(self, b):
        """The edge just read (b: the batch's steps up to it) is the next magnet's: its slot and lead,
        and the gap it closes learnt when both ends were pinned to a step."""
        i = self.slot + 1
        if i >= self.n:
            i = 0
        self.slot = i
        if 1 <= b <= _PIN_BATCH:  # the edge is at one of the few steps this read confirmed
            after = (b - 1) * 500  # milli-steps after the edge: its middle, +-1/2 step
            if self._gap_steps > 0:
                i = self._learn(i, self._gap_steps * 1000 + self._gap_after - after - self.spp_milli)
                self.slot = i
            self._gap_steps = 0
            self._gap_after = after
        else:
            self._gap_steps = -1
        self.lead = self.lead_for(i)

    def _learn(self, i, g):
        """A measured gap (milli-steps beyond a pass) ending at the magnet of slot i; returns the slot.
        With gaps kept from before a restart or a stall (saved), the one slot whose kept gap alone
        matches it within _MATCH_MILLI names this magnet and every kept gap applies at once; an
        ambiguous or no match learns afresh."""
        kept = self.saved
        if kept is not None:
            self.saved = None
            j = self._match(kept, g)
            if j >= 0:
                for s in range(self.n):
                    self.gap_milli[s] = kept[s]
                    self.gap_known[s] = True
                i = j
        self.gap_milli[i] = g
        self.gap_known[i] = True
        return i

    def _match(self, kept, g):
        """The one slot whose kept gap is g within _MATCH_MILLI; -1 if none, -2 if several."""
        j = -1
        for s in range(self.n):
            d = kept[s] - g
            if -_MATCH_MILLI <= d <= _MATCH_MILLI:
                j = s if j == -1 else -2
        return j

    def gaps(self):
        """The learnt gaps for the store (None until every magnet's is known): the magnets' placement
        outlives a restart; which one comes next does not (matched again by _learn)."""
        for ok in self.gap_known:
            if not ok:
                return self.saved
        return list(self.gap_milli)

    def restore(self, gaps):
        """Gaps from the store (gaps()); anything but one small int per magnet is ignored."""
        lim = self.spp_milli // 8
        if self.n < 2 or not isinstance(gaps, list) or len(gaps) != self.n:
            return
        for g in gaps:
            if type(g) is not int or not -lim <= g <= lim:
                return
        self.saved = gaps

    def lead_for(self, i):
        """Steps the magnet of slot i sits after the magnets' mean, from the learnt gaps (0 until the
        gaps ending at all but one magnet are known): with e_j the magnets' errors and gap_j = pass +
        e_j - e_(j-1), e_i - mean(e) = sum over j = 0..k-2 of (k-1-j) gap_(i-j) / k."""
        k = self.n
        d = 0
        for j in range(k - 1):
            if i < 0:
                i += k  # slot i walks back from the magnet's: i - j
            if not self.gap_known[i]:
                return 0
            d += (k - 1 - j) * self.gap_milli[i]
            i -= 1
        return (d // k + 500) // 1000

    def clear(self):
        """After a stall halt: count afresh, phase and which magnet comes next unknown (the magnets
        stay where they are: the learnt gaps are kept, matched again at the next pinned gap)."""
        self.steps = 0
        self.batch = 0
        self.seen = False
        self._gap_steps = -1
        kept = self.gaps()
        if kept is not None:
            self.saved = kept
        for j in range(self.n):
            self.gap_known[j] = False

    def status(self, dosing):
        return {"edges": self.edges, "phase_steps": dosing.phase_steps, "known": dosing.phase_known,
                "early_edges": self.early, "steps_since_edge": self.steps, "stall_steps": self.stall_steps,
                "lead_steps": dosing.lead_steps, "gaps_known": sum(1 for g in self.gap_known if g),
                "repriced_pl": dosing.repriced_pl, "owed_pl": dosing.owed_pl}
