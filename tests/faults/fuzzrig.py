"""The link under fuzz, shared by tests/faults/test_protocol_fuzz.py (hypothesis, in make test) and
bench/fuzz.py (the long run): fixed keys, a clock, in-memory counters and a fake ops table whose change
handlers validate their args and then record the change (so a reject that changed state is visible)."""

from fakes import FakeClock, MemCounters
from itpump import auth, protocol

KEYS = {r: bytes((i * m + 7) % 256 for i in range(32)) for r, m in
        ((auth.PATIENT, 37), (auth.CLINICIAN, 91), (auth.SERVICE, 53))}
CODES = {getattr(protocol, n) for n in dir(protocol) if n.startswith("E_")}
CHANGES = sorted(op for r in auth.PERMISSIONS for op in auth.PERMISSIONS[r])
READS = ["status", "ping", "logs"]


class FakeOps:
    """Ops table for protocol.dispatch: reads answer, changes validate args then append to `changes`."""

    def __init__(self):
        self.changes = []
        self.ops = {op: (lambda a: {"n": len(self.changes)}, protocol.READ) for op in READS}
        for op in CHANGES:
            self.ops[op] = (self._change(op), protocol.CHANGE)

    def _change(self, op):
        def fn(args):
            protocol.check_args(args, {"volume_ul": (int, False, 1, 1000), "note": (str, False)})
            self.changes.append((op, dict(args)))
            return {"n": len(self.changes)}
        return fn


def authenticator(free_failures=10**6, **kw):
    """(authenticator, counters, clock) on a fresh state, with KEYS."""
    clock = FakeClock(0)
    counters = MemCounters()
    return auth.Authenticator(clock, counters, keys=KEYS, free_failures=free_failures, **kw), counters, clock
