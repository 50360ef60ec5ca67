# Drug table (concentration and daily dose ranges) and the device's volume limits.
# Integers only: concentrations in ug/mL, doses in ng, volumes in nL, rates in nL/h.
# Sources and the reasoning behind each limit: docs/drugs.md.
from micropython import const

# Device volume limits (docs/drugs.md): 12 mL/day ceiling, checked on exact volumes, never on rounded rates.
MAX_DAILY_NL = const(12000000)  # basal + periodic + patient boluses at their daily maximum
MAX_BASAL_NL_PER_DAY = const(12000000)  # any basal step, as a daily volume
MAX_BASAL_NL_PER_H = const(500000)  # the same per hour: 12 mL / 24 h exactly, so in-limit rates round to <= it
# SynchroMed II's lowest programmable flow (its programmer guide)
MIN_BASAL_NL_PER_DAY = const(48000)
MIN_BASAL_NL_PER_H = const(2000)  # the same per hour (48000 / 24 exactly)
# Hard ceiling on the total rate, boluses included; dosing.py relies on it to keep rate*ms below 2**30.
MAX_RATE_NL_PER_H = const(1000000)
MAX_BOLUS_NL = const(1000000)  # one bolus (priming a long catheter included) is at most 1 mL
MAX_CATHETER_NL = const(1000000)  # catheter internal volume (priming, bridge)

# Drug table: name -> (conc_min_ug_per_ml, conc_max_ug_per_ml, dose_min_ng_per_day, dose_max_ng_per_day)
DRUGS = {
    "morphine": (1000, 20000, 50000, 15000000),
    "hydromorphone": (500, 15000, 5000, 10000000),
    "ziconotide": (5, 100, 250, 19200),
    "bupivacaine": (1000, 30000, 10000, 20000000),
    "clonidine": (50, 1000, 10000, 600000),
    "baclofen": (50, 2000, 10000, 2000000),
}

_CONC_MIN = const(0)  # indices into a DRUGS entry
_CONC_MAX = const(1)
_DOSE_MIN = const(2)
_DOSE_MAX = const(3)


def names():
    return sorted(DRUGS)


def limits(drug):
    """(conc_min_ug_per_ml, conc_max_ug_per_ml, dose_min_ng_per_day, dose_max_ng_per_day); KeyError if unknown."""
    return DRUGS[drug]
