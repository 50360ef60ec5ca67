# The state document: what is saved (store.py: two slots, CRC, generation; the reserve mark file) and
# restored at boot, with the rules of a restore: delivered drug never under-counted, an interrupted bolus
# abandoned, a bad document stops delivery. Files and reasons: docs/persistence.md.
import gc

from itpump import alarms, eventlog, halts, store
from itpump.journal import err_text
from itpump.reservoir import Reservoir
from itpump.therapy import Therapy

VERSION = 1  # the document's "v"


class StateDoc:
    def __init__(self, path, pump, time, journal):
        self.store = store.Store(path)
        self.policy = store.CheckpointPolicy(time.clock)
        self.pump = pump
        self.time = time
        self.journal = journal
        self.rx_id = 0  # counts programmes (and refills with one)
        self.boot_count = 0
        self.serviced = False  # delivery suspended by the service op (a restart resumes it)
        self.booked_boot_nl = 0  # booked as delivered at this boot without confirmed pulses (reserve)
        self.booked_total_nl = 0  # the same over every boot
        self.failures = 0  # saves that failed
        self.error = None  # the last save failure, for status
        self.problem = None  # why the document found at boot could not be used

    def restore(self):
        """The newest valid document from the store, applied; boot_count counts this boot."""
        ev = self.journal.event
        try:
            state, gen, problems = self.store.load()
        except Exception:
            gc.collect()  # a MemoryError at boot: once more on a collected heap before giving up
            try:
                state, gen, problems = self.store.load()
            except Exception as e:
                state, gen, problems = None, 0, ["load failed: %s" % type(e).__name__]
        for msg in problems:
            slot = 0 if msg.startswith("state.0") else 1 if msg.startswith("state.1") else eventlog.STORE_STATE
            ev(eventlog.STORE_PROBLEM, gen, slot)
        if state is not None:
            try:
                self._apply(state)
            except Exception as e:
                # invalid state: no basal resumes; what was delivered stays counted where it could be read
                self.problem = err_text(e)
                ev(eventlog.STORE_PROBLEM, gen, eventlog.STORE_STATE)
                self.pump.therapy = None
                halts.hold_internal(self.pump)
        elif problems:
            self.problem = "; ".join(problems)
        self.boot_count += 1

    def _apply(self, st):
        if st.get("v") != VERSION:
            raise ValueError("state version %r" % st.get("v"))
        p = self.pump
        ev = self.journal.event
        self.boot_count = st.get("boot_count", 0)
        cal = st.get("cal") or {}
        if "pl_per_step" in cal:
            p.set_pl_per_step(cal["pl_per_step"])
        if p.idx is not None:
            p.idx.restore(st.get("rotor"))  # the index magnets' placement, learnt before the restart
        if st.get("reservoir"):
            p.reservoir = Reservoir.from_dict(st["reservoir"])
        rx = st.get("rx")
        if rx is not None:
            th = Therapy.from_dict(rx, st.get("therapy") or {}, self.time.s)
            if st.get("svc"):  # suspended by the service op: a restart (after flashing) resumes it
                th.suspend(False)
                p.log_safety(halts.S_RESUME, 0, 0)
            p.therapy = th
            self.rx_id = st.get("rx_id", 0)
        delivered = st.get("delivered_nl", 0)
        mark = self.store.mark
        recovered = store.recovered_delivered_nl(st, mark)
        if self.store.mark_bad and p.therapy is not None:  # the mark's value is lost: book what it could reach
            recovered = store.reserve_mark(recovered, p.therapy.peak_basal_nl_per_h(), store.RESERVE_BOUND_MS)
        unrecorded_nl = recovered - delivered  # maybe given after the checkpoint: counted as given
        known = mark[0] if mark is not None and mark[0] > delivered else delivered  # confirmed, last known
        self.booked_total_nl = st.get("booked_nl", 0)
        if recovered > known:
            self.booked_boot_nl = recovered - known
            self.booked_total_nl += self.booked_boot_nl
            ev(eventlog.RESERVE_BOOKED, self.booked_boot_nl, self.booked_total_nl)
        p.delivered_nl = recovered
        p.reserved_nl = recovered
        p.total_nl = st.get("total_nl", 0) + unrecorded_nl
        p.day_nl = st.get("day_nl", 0) + unrecorded_nl
        p.reservoir.draw_pl(unrecorded_nl * 1000)
        try:
            p.guard.from_dict(st.get("guard"), unrecorded_steps=(unrecorded_nl * 1000 + p.dosing.pl_per_step - 1)
                              // p.dosing.pl_per_step)
        except ValueError:
            p.guard.assume_full()  # lost windows: assume them full (nothing more until they drain)
            ev(eventlog.STORE_PROBLEM, 0, eventlog.STORE_GUARD)
        t = self.time
        t.tz_min = st.get("tz_min", 0)
        wall = st.get("wall_s", 0)
        if wall:
            t.set(wall, t.tz_min, "restored")
        p.set_tod(t.tod_ms() if wall else st.get("tod_ms", 0))
        t.new_day(p.tod_ms)
        halts.restore(p, st.get("halt", 0))
        b = st.get("bolus")
        if b:  # a bolus interrupted by the reset: abandoned, never resumed
            ev(eventlog.BOLUS_ABANDONED, b[1])

    def document(self):
        """The document the store keeps (all small ints, JSON-able)."""
        p = self.pump
        th = p.therapy
        t = self.time
        b = None
        if th is not None and th.bolus_kind is not None:
            b = [th.bolus_kind, th.bolus_left_nl]
        return {
            "v": VERSION, "rx": th.prescription() if th is not None else None, "rx_id": self.rx_id,
            "therapy": th.to_dict(t.s) if th is not None else None, "bolus": b,
            "reservoir": p.reservoir.to_dict(), "delivered_nl": p.delivered_nl, "reserved_nl": p.reserved_nl,
            "total_nl": p.total_nl, "day_nl": p.day_nl, "guard": p.guard.to_dict(t.clock.ticks_ms()),
            "cal": {"pl_per_step": p.dosing.pl_per_step}, "boot_count": self.boot_count,
            "wall_s": t.wall.now_s(), "tz_min": t.tz_min, "tod_ms": p.tod_ms, "halt": p.halt & halts.SAVED,
            "svc": self.serviced, "rotor": None if p.idx is None else p.idx.gaps(),
            "booked_nl": self.booked_total_nl,
        }

    def save(self, mark_only=False):
        """Save the document, or only move the reserve mark (RESERVE_MS of basal ahead, in the mark
        file). Raises on failure with the old mark kept: the pump waits at it, the caller refuses its
        change."""
        p = self.pump
        p.account()
        old = p.reserved_nl
        p.reserved_nl = store.mark_ahead(p, p.delivered_nl, store.RESERVE_MS)
        try:
            if mark_only:
                self.store.save_mark(p.delivered_nl, p.reserved_nl)
            else:
                self.store.save(self.document())
        except Exception:
            p.reserved_nl = old
            raise
        p.need_mark = False
        if not mark_only:
            p.need_save = False
            self.policy.saved()

    def try_save(self, mark_only=False):
        """save() from the loop: a failure is counted, logged (the first and every 100th) and raises
        INTERNAL; delivery stops at the old mark."""
        try:
            self.save(mark_only)
        except Exception as e:
            self.failures += 1
            self.error = err_text(e)
            if self.failures == 1 or self.failures % 100 == 0:
                self.journal.event(eventlog.STORE_PROBLEM, self.store.generation, eventlog.STORE_STATE)
            self.pump.alarms.raise_alarm(alarms.INTERNAL)

    def housekeep(self):
        """Once a second: a full save when a halt or the policy asks, else the mark moved when close.
        True if it wrote the flash."""
        p = self.pump
        if p.running():
            self.policy.progress()
            if store.mark_low(p):
                p.need_mark = True
        if p.need_save or self.policy.due():
            self.try_save()
        elif p.need_mark:
            self.try_save(True)
        else:
            return False
        return True
