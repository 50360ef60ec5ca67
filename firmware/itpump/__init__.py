# itpump firmware package. Pure logic lives here; hardware arrives through the board object.
VERSION = "0.1.0"
# The package's modules (hal/ and app aside) in load order, dependencies first: app.py imports them in
# this order, bench/heap7d.py measures them, tests/firmware/test_modules.py checks the list against the
# folder that pumpctl flash and the frozen manifest ship.
MODULES = ("protocol", "alarms", "store", "auth", "eventlog", "supervisor", "halts", "drugs", "prescription",
           "therapy", "pulsation", "dosing", "guard", "reservoir", "occlusion", "rotor", "line", "pump", "power",
           "journal", "identity", "timekeeping", "statedoc", "link", "ops", "ops_therapy", "ops_bolus", "ops_admin")


# How a module refuses a value outside its limit: LimitError, and check_int, the one checked integer.
# The link answers a LimitError as LIMIT (ops.py); pumpctl tells it in the units that were typed.
class LimitError(ValueError):
    """A value outside its limit: .field (dotted path), .value, .limit (the bound, or what was expected)."""

    def __init__(self, field, value, limit, why):
        super().__init__("%s = %r: %s %r" % (field, value, why, limit))
        self.field = field
        self.value = value
        self.limit = limit


def check_int(name, v, lo, hi, *what):
    """v if it is an int (not a bool) in lo..hi, else LimitError naming it; what[0], if given, says whose
    bound (" for morphine"). A vararg, not a default: a default is a tuple on the heap from boot."""
    if type(v) is not int:
        raise LimitError(name, v, "an integer", "must be")
    if v < lo:
        raise LimitError(name, v, lo, "below the minimum" + (what[0] if what else ""))
    if v > hi:
        raise LimitError(name, v, hi, "above the maximum" + (what[0] if what else ""))
    return v
