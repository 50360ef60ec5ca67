# Drug table and device volume limits. Integers only: concentration in ug/mL, doses in ng (ziconotide is
# dosed in tenths of a microgram a day, so whole ug/day cannot express its usual starting doses), volumes
# in nL, rates in nL/h.
#
# Sources of the ranges (intrathecal use, adults):
# - Deer TR et al., The Polyanalgesic Consensus Conference (PACC): Recommendations on Intrathecal Drug
#   Infusion Systems Best Practices and Guidelines, Neuromodulation 2017;20:96-132: recommended maximum
#   concentrations and daily doses (morphine 20 mg/mL and 15 mg/day, hydromorphone 15 mg/mL and 10 mg/day,
#   bupivacaine 30 mg/mL and 15-20 mg/day, clonidine 1000 ug/mL and 600 ug/day, ziconotide 100 ug/mL and
#   19.2 ug/day) and starting doses (morphine 0.1-0.5 mg/day, hydromorphone 0.01-0.15 mg/day,
#   ziconotide 0.5-1.2 ug/day, bupivacaine 0.01-4 mg/day, clonidine 20-100 ug/day).
# - Lioresal Intrathecal (baclofen) US label: 50, 500 and 2000 ug/mL; maintenance doses in the trials
#   12-2003 ug/day (most 300-800 ug/day).
# The floors are below the smallest usual starting dose: they catch unit slips (ug typed as mg) without
# blocking a cautious start. The device is a benchtop mock: these bound what it accepts, they are not
# clinical advice.
try:
    from micropython import const
except ImportError:  # CPython (host tools, unit tests)
    def const(x):
        return x

# Device volume limits.
# Every PACC maximum daily dose fits in 1 mL/day at the maximum concentration (morphine 15 mg at 20 mg/mL
# is 0.75 mL, hydromorphone 0.67 mL, bupivacaine 0.67 mL, clonidine 0.6 mL, ziconotide 0.19 mL, baclofen
# 2000 ug at 2000 ug/mL is 1 mL), so more than 1 mL/day of scheduled drug is a programming error.
MAX_DAILY_NL = const(1000000)  # basal + periodic + patient boluses at their daily maximum
MAX_BASAL_NL_PER_H = const(41666)  # any basal step: 1 mL/day
# SynchroMed II's lowest programmable flow is 0.048 mL/day (its programmer guide); slower than that,
# catheter patency and the accuracy of a few steps an hour both suffer.
MIN_BASAL_NL_PER_H = const(2000)
# Hard ceiling on the total rate, boluses included: 1 mL/h pushes a 0.2 mL catheter prime in 12 min, and
# with 20 nL per microstep is 14 steps/s. dosing.py relies on rate <= 1e6 to keep rate*ms below 2**30.
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

CONC_MIN = const(0)  # indices into a DRUGS entry
CONC_MAX = const(1)
DOSE_MIN = const(2)
DOSE_MAX = const(3)


def names():
    return sorted(DRUGS)


def limits(drug):
    """(conc_min_ug_per_ml, conc_max_ug_per_ml, dose_min_ng_per_day, dose_max_ng_per_day); KeyError if unknown."""
    return DRUGS[drug]
