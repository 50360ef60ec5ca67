# Prescriptions the firmware tests start from (continuous, flex, periodic, a patient bolus); keyword
# arguments replace fields. Runs under CPython and micropython alike.


def rx_cont(**kw):
    rx = {"drug": "morphine", "conc_ug_per_ml": 10000, "catheter_volume_nl": 200000, "mode": "continuous",
          "dose_ng_per_day": 1200000}
    rx.update(kw)
    return rx


def rx_flex(**kw):
    rx = {"drug": "baclofen", "conc_ug_per_ml": 2000, "catheter_volume_nl": 200000, "mode": "flex",
          "flex": [{"start_min": 0, "dose_ng_per_day": 300000},
                   {"start_min": 420, "dose_ng_per_day": 600000},
                   {"start_min": 1320, "dose_ng_per_day": 480000}]}
    rx.update(kw)
    return rx


def rx_periodic(**kw):
    rx = {"drug": "baclofen", "conc_ug_per_ml": 500, "catheter_volume_nl": 200000, "mode": "periodic",
          "dose_ng_per_day": 0,
          "periodic": {"dose_ng": 50000, "every_h": 6, "start_min": 60, "duration_min": 10}}
    rx.update(kw)
    return rx


def patient(**kw):
    p = {"dose_ng": 100000, "duration_min": 5, "lockout_min": 60, "max_per_day": 3}
    p.update(kw)
    return p
