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
from micropython import const

# Device volume limits.
# The table allows dilute solutions (trialling; baclofen at the label's 50 ug/mL screening strength), and at
# the minimum concentrations the maximum daily doses need far more than 1 mL/day: clonidine 600 ug at
# 50 ug/mL is 12 mL, morphine 15 mg at 1 mg/mL 15 mL, baclofen 2000 ug at 50 ug/mL 40 mL. The ceiling is
# 12 mL/day (500 uL/h), basal and boluses together. No manufacturer's maximum programmable flow was found
# in the sources searched (SynchroMed II, Prometra), so none is claimed; the choice rests on: it is half the
# 1 mL/h hard rate below, so a bolus always has 0.5 mL/h of room over any basal; it empties the smaller
# reservoir size (20 mL: Prometra's labeling lists 20 and 40 mL pumps, reservoir.CAPACITIES_NL) in under
# two days, past which a stronger concentration is the answer, not more volume; it covers 5 mL/day
# (bench accuracy runs, dilute trialling) with room. More is refused with the limit named.
# Volume limits are checked on the exact volume (dose * 1000 / concentration, in integers), never on a
# rounded rate: a prescription exactly at a limit passes, one a fraction of a nL over does not.
MAX_DAILY_NL = const(12000000)  # basal + periodic + patient boluses at their daily maximum
MAX_BASAL_NL_PER_DAY = const(12000000)  # any basal step, as a daily volume
MAX_BASAL_NL_PER_H = const(500000)  # the same per hour: 12 mL / 24 h exactly, so in-limit rates round to <= it
# SynchroMed II's lowest programmable flow is 0.048 mL/day (its programmer guide); slower than that,
# catheter patency and the accuracy of a few steps an hour both suffer.
MIN_BASAL_NL_PER_DAY = const(48000)
MIN_BASAL_NL_PER_H = const(2000)  # the same per hour (48000 / 24 exactly)
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
