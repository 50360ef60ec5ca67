"""Delivery accuracy of the firmware's real pipeline on the virtual plant, IEC 60601-2-24 style: per
plant unit a gravimetric calibration, then 24 h of therapy; the 24 h error and the trumpet curve for
each row (cal, primed, noindex, nominal, ideal). What runs and each figure: docs/figures.md."""

from __future__ import annotations

import argparse
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "boards" / "sim" / "rom"))
sys.path.insert(0, str(ROOT / "host_tools"))

import plant as plantmod  # noqa: E402
import simhw  # noqa: E402
from itpump import dosing, store  # noqa: E402
from itpump.pump import TICK_MS, Pump  # noqa: E402
from itpump.therapy import DAY_MS, Therapy  # noqa: E402
from pumpctl.units import mass_to_nl  # noqa: E402

SAMPLE_MS = 30_000  # IEC 60601-2-24: gravimetric samples every 0.5 min
WINDOWS_MIN = (2, 5, 11, 19, 31)
# cal: the user's calibration, index + profile; noindex: the same on a board without the rotor index;
# nominal: the nominal 15 nL/step (no calibration); ideal: calibrated, on a plant whose head has no
# roller pulsation and no profile (a diagnostic row, not a figure: it separates what the firmware's step
# quantisation and timing cost from what the pump head's pulsation costs)
VARIANTS = ("cal", "primed", "noindex", "nominal", "ideal")
PRIME_MIN = 20  # primed: the catheter volume (200 uL) in 20 min (600 uL/h) before the measured day
# Loop jitter: the app's tick runs late by 0..JITTER_MS (USB service, flash writes), and one tick in
# GC_EVERY by GC_MS more (a MicroPython collection of a ~100 KB heap on an RP2040 takes a few ms; we
# take a harsh 40 ms). The tick deltas carry the time, so jitter must cost nothing.
JITTER_MS = 15
GC_EVERY = 300
GC_MS = 40
# The user's calibration (docs/hardware.md "Volume per microstep"): 20 revolutions (60 roller passes) at
# 20 ms/step into a beaker, 3 runs, a 1 mg balance, the summed mass through `pumpctl calibrate --mass-mg`
# (water at 20 C: 0.9982 mg/uL). The old procedure (500 us/step, "water is 1 mg per uL") is run for
# comparison: its back pressure slips the head (plant.SLIP_PER_PA) and mg as uL under-reads by 0.18 %.
CAL_STEPS = 64000
CAL_PERIOD_US = 20_000
OLD_CAL_PERIOD_US = 500
CAL_RUNS = 3
CAL_DRAIN_MS = 60_000  # wait for the line to drain into the beaker (tau = RC ~ 0.3 s)
WATER_G_PER_ML = 0.9982  # the true density the balance sees (20 C)

RX = {
    "0.1 mL/d": {"drug": "morphine", "conc_ug_per_ml": 10_000, "catheter_volume_nl": 200_000,
                 "mode": "continuous", "dose_ng_per_day": 1_000_000},
    "0.5 mL/d": {"drug": "morphine", "conc_ug_per_ml": 10_000, "catheter_volume_nl": 200_000,
                 "mode": "continuous", "dose_ng_per_day": 5_000_000},
    # 1 mL/day exactly rounds to 41667 nL/h, 1 nL/h over the firmware's basal maximum: 0.999 mL/day
    # the device's basal maximum is 12 mL/day (drugs.MAX_BASAL_NL_PER_DAY); morphine's daily dose 15 mg
    "5 mL/d": {"drug": "morphine", "conc_ug_per_ml": 2_000, "catheter_volume_nl": 200_000,
               "mode": "continuous", "dose_ng_per_day": 10_000_000},
    # examples/baclofen_flex.toml: 0.25 / 0.35 / 0.2 / 0.3 mL/day steps at 0, 6, 9, 21 h
    "flex": {"drug": "baclofen", "conc_ug_per_ml": 2_000, "catheter_volume_nl": 200_000, "mode": "flex",
             "flex": [{"start_min": 0, "dose_ng_per_day": 500_000},
                      {"start_min": 360, "dose_ng_per_day": 700_000},
                      {"start_min": 540, "dose_ng_per_day": 400_000},
                      {"start_min": 1260, "dose_ng_per_day": 600_000}]},
}


class Clock:
    """Board clock with the RP2040's 2**30 ticks_ms wrap (starts a minute before the wrap)."""

    PERIOD = 1 << 30

    def __init__(self):
        self.t = self.PERIOD - 60_000  # absolute ms, unwrapped

    def ticks_ms(self):
        return self.t & (self.PERIOD - 1)

    raw_ticks_ms = ticks_ms

    def ticks_diff(self, a, b):
        d = (a - b) & (self.PERIOD - 1)
        return d - self.PERIOD if d >= self.PERIOD // 2 else d

    def ticks_add(self, a, d):
        return (a + d) & (self.PERIOD - 1)


class Alarms:
    def __init__(self):
        self.raised = []

    def raise_alarm(self, code, now_ms=None):
        self.raised.append(code)


class Board:
    """The sim board's devices the Pump uses here (no pressure sensor: no occlusion detector), with the
    rotor index and the calibration keys as boards/sim/board.py gives them."""

    def __init__(self, seed, index=True):
        self.clock = Clock()
        self.world = simhw.World(self.clock, None, seed)
        self.motor = self.world.motor
        self.plant = self.world.plant
        self.calibration = {"pl_per_step": plantmod.NOMINAL_PL_PER_STEP}
        if index:
            self.rotor = simhw.SimRotor(self.world)
            self.calibration["steps_per_pass_milli"] = int(plantmod.STEPS_PER_REV * 1000 / plantmod.ROLLERS + 0.5)
            self.calibration["pulsation_ppm"] = self.plant.profile_ppm()

    def run_to(self, t_abs):
        self.clock.t = t_abs
        self.world.sync()


def calibrate(board: Board, period_us: int = CAL_PERIOD_US, as_ul: bool = False) -> tuple[int, int, int]:
    """The user's gravimetric calibration: (pl_per_step, measured_nl, steps). as_ul: the old procedure's
    "mg taken as uL" instead of pumpctl's density conversion."""
    m, p = board.motor, board.plant
    m.enable(True)
    mass_mg = steps = 0
    for _ in range(CAL_RUNS):
        v0 = p.delivered_ul
        m.move(CAL_STEPS, period_us)
        t_end = board.clock.t + CAL_STEPS * period_us // 1000 + CAL_DRAIN_MS
        while board.clock.t < t_end:
            board.run_to(board.clock.t + TICK_MS)
        steps += m.take_confirmed()
        mass_mg += round((p.delivered_ul - v0) * WATER_G_PER_ML)  # 1 mg balance, per run
    m.enable(False)
    measured_nl = mass_mg * 1000 if as_ul else mass_to_nl(str(mass_mg), 20)[0]
    return dosing.calibrate(measured_nl, steps, plantmod.NOMINAL_PL_PER_STEP), measured_nl, steps


def calibration_check(seed: int) -> dict:
    """The documented procedure (20 ms per step: back pressure near the therapy's, so little back-slip;
    the water's density) against the old one (500 us/step, mg taken as uL): the bias each leaves."""
    out = {"seed": seed}
    for name, period, as_ul in (("doc", CAL_PERIOD_US, False), ("old", OLD_CAL_PERIOD_US, True)):
        b = Board(seed)
        pl = calibrate(b, period, as_ul)[0]
        # true mean volume per step in therapy (line near the tip pressure, ripple averaged out)
        true_pl = plantmod.NOMINAL_PL_PER_STEP * (1 + b.plant.unit_bias) * (
            1 - plantmod.SLIP_PER_PA * plantmod.OUTLET_PA)
        out[name] = (pl, (true_pl / pl - 1) * 100)
    return out


def rate_nl_per_ms(rx: dict, tod_ms: int) -> Fraction:
    """Exact prescribed flow at a time of day, from the prescription (ng/day * 1000 / (ug/mL) = nL/day)."""
    if rx["mode"] == "continuous":
        dose = rx["dose_ng_per_day"]
    else:
        dose = [s for s in rx["flex"] if s["start_min"] * 60_000 <= tod_ms][-1]["dose_ng_per_day"]
    return Fraction(dose * 1000, rx["conc_ug_per_ml"] * DAY_MS)


def run(args: tuple) -> dict:
    name, seed, variant, hours = args
    calibrated = variant != "nominal"
    rx = RX[name]
    board = Board(seed, index=variant != "noindex")
    if variant == "ideal":
        board.plant.pulsation = 0.0  # diagnostic only: a head without roller pulsation, and no profile
        board.calibration.pop("pulsation_ppm", None)
    cal = calibrate(board) if calibrated else (plantmod.NOMINAL_PL_PER_STEP, 0, 0)
    pl = cal[0]
    board.run_to(board.clock.t + 10_000)
    alarms = Alarms()
    pump = Pump(board, alarms, pl, None, board.calibration)  # the rotor and its keys, as the app passes them
    pump.reservoir.refill(rx["drug"], rx["conc_ug_per_ml"], 20_000_000, 0)
    pump.therapy = Therapy(rx)
    jit = random.Random(seed)

    def tick_at(t_nom, k):
        """One control tick at its nominal time (+ jitter) and, every 10th, the app's housekeeping."""
        late = jit.randrange(JITTER_MS + 1) + (GC_MS if jit.randrange(GC_EVERY) == 0 else 0)
        board.clock.t = t_nom + late
        pump.tick(board.clock.ticks_ms())
        if k % 10 == 0 or pump.need_save or pump.need_mark:  # the app's housekeeping: accounting, reserve
            pump.account()
            if store.mark_low(pump):
                pump.need_mark = True
            if pump.need_save or pump.need_mark:
                pump.reserved_nl = store.mark_ahead(pump, pump.delivered_nl, store.RESERVE_MS)
                pump.need_save = pump.need_mark = False

    if variant == "primed":  # the set-up after implant: the catheter primed (200 uL in 20 min) first
        assert pump.therapy.prime(PRIME_MIN) is None
        t, k = board.clock.t, 0
        while pump.therapy.bolus_kind is not None:
            k += 1
            tick_at(t + k * TICK_MS, k)
        for j in range(1, 600):  # a minute more: the line settles; basal is running already
            tick_at(t + (k + j) * TICK_MS, k + j)
        board.run_to(t + (k + 600) * TICK_MS)
        pump.set_tod(0)  # the host's time sync: the schedule's day starts with the measurement
    t0 = board.clock.t
    p = board.plant
    v_start = p.delivered_ul
    n_ticks = hours * 3_600_000 // TICK_MS
    per_sample = SAMPLE_MS // TICK_MS
    edge1 = -1  # sample index at which the firmware first knew the rotor phase
    delivered, expected = [], []
    last_v = v_start
    exp_acc = Fraction(0)
    for k in range(n_ticks + 1):
        t_nom = t0 + k * TICK_MS
        if k % per_sample == 0 and k:
            board.run_to(t_nom)  # sample the balance exactly on the 0.5 min grid
            delivered.append(p.delivered_ul - last_v)
            last_v = p.delivered_ul
            # uL; flex steps start on whole minutes, so the rate is constant over each 30 s sample
            e = rate_nl_per_ms(rx, (t_nom - t0 - SAMPLE_MS) % DAY_MS) * SAMPLE_MS / 1000
            expected.append(e)
            exp_acc += e
        if k == n_ticks:
            break
        tick_at(t_nom, k)
        if edge1 < 0 and pump.idx is not None and pump.idx.edges:
            edge1 = len(delivered) + 1  # the first sample that starts after it
    pump.account()
    total_exp = float(exp_acc)
    total = p.delivered_ul - v_start
    out = {"name": name, "seed": seed, "variant": variant, "calibrated": calibrated, "pl": pl, "cal_nl": cal[1],
           "cal_steps": cal[2], "bias": p.unit_bias, "err24": (total - total_exp) / total_exp * 100,
           "fw_err24": (pump.delivered_nl / 1000 - total_exp) / total_exp * 100,
           "alarms": alarms.raised, "withheld": pump.dosing.withheld_steps, "waits": pump.reserve_waits,
           "skipped_ms": pump.dosing.skipped_ms, "edges": pump.idx.edges if pump.idx else None,
           "early_edges": pump.idx.early if pump.idx else None, "plant_edges": p.index_edges,
           "edge1_h": edge1 * SAMPLE_MS / 3_600_000 if edge1 >= 0 else None,
           "repriced_nl": pump.dosing.repriced_pl / 1000, "reprice_est_nl": pump.dosing.reprice_est_pl / 1000}
    exp_f = [float(e) for e in expected]
    spm = 60_000 // SAMPLE_MS
    steady = (spm * 60, len(delivered))  # hour 1 to the end
    out["trumpet"] = {w: trumpet(delivered, exp_f, w * spm, *steady) for w in WINDOWS_MIN}
    # the IEC analysis periods: the 2nd hour and the 24th (the run's last hour)
    out["h2_31"] = period_31(delivered, exp_f, 2)
    out["h24_31"] = period_31(delivered, exp_f, hours)
    lo = max(edge1, spm * 60)
    out["known_31"] = trumpet(delivered, exp_f, 31 * spm, lo, len(delivered)) if edge1 >= 0 and \
        len(delivered) - lo >= 31 * spm else None
    return out


def period_31(q: list, e: list, hour: int) -> tuple[float, float] | None:
    """The worst 31-min trumpet point inside one IEC analysis period: the given hour (1-based) of the
    run, None if the run is shorter."""
    spm = 60_000 // SAMPLE_MS
    lo, hi = spm * 60 * (hour - 1), spm * 60 * hour
    return trumpet(q, e, 31 * spm, lo, hi) if hour >= 1 and hi <= len(q) else None


def trumpet(q: list, e: list, m: int, lo: int, hi: int) -> tuple[float, float]:
    """IEC 60601-2-24 trumpet point: (max, min) % error over every window of m consecutive samples
    within samples [lo, hi)."""
    sq = sum(q[lo:lo + m])
    se = sum(e[lo:lo + m])
    best = worst = (sq - se) / se * 100
    for j in range(lo + 1, hi - m + 1):
        sq += q[j + m - 1] - q[j - 1]
        se += e[j + m - 1] - e[j - 1]
        x = (sq - se) / se * 100
        best = x if x > best else best
        worst = x if x < worst else worst
    return best, worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="1 unit per schedule, 6 h (smoke test)")
    g.add_argument("--full", action="store_true", help="3 units per schedule")
    ap.add_argument("--units", type=int, default=None, help="plant units (seeds) per schedule (default 1, --full 3)")
    ap.add_argument("--hours", type=int, default=None, help="hours of therapy per unit (default 24, --quick 6)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    a = ap.parse_args()
    units = a.units or (3 if a.full else 1)
    hours = a.hours or (6 if a.quick else 24)
    t_start = time.perf_counter()
    jobs = [(name, 11 + u, v, hours) for name in RX for u in range(units) for v in VARIANTS]
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        res = list(ex.map(run, jobs))
        cals = list(ex.map(calibration_check, sorted({j[1] for j in jobs})))
    print(f"plant: {plantmod.NOMINAL_PL_PER_STEP / 1000:.1f} nL/step nominal, unit bias within "
          f"+-{plantmod.UNIT_BIAS_MAX * 100:.0f} %, step scatter {plantmod.STEP_SCATTER * 100:.0f} % sigma, "
          f"pulsation +-{plantmod.PULSATION * 100:.0f} % (+-{plantmod.PULSATION_SPREAD * 100:.0f} % per unit) per "
          f"roller pass, index magnets +-{plantmod.MAGNET_ERR_PASS * 100:.1f} % of a pass, profile error "
          f"{plantmod.PROFILE_NOISE_PPM / 1e4:.1f} % per bin; 100 ms tick + 0..{JITTER_MS} ms jitter")
    last = f"h{hours}"  # the IEC's 24th-hour period: the run's last hour
    print(f"{hours} h per run; trumpet windows over hour 1..{hours}, 30 s samples; h2, {last} = the IEC analysis "
          f"periods (the 2nd, the last hour alone); known = hour 1 on, from the first index edge; goals: "
          f"|24 h| <= 0.5 %, 31 min <= 2 %")
    head = (f"{'schedule':>8} {'unit':>4} {'variant':>7} {'pL/step':>7} {'bias':>6} | {'24h err':>7} | "
            + " | ".join(f"{w:>2} min max/min" for w in WINDOWS_MIN)
            + f" |   h2 31 min | {last:>3} 31 min | known 31 min | edge1")
    print(head)
    print("-" * len(head))

    def pair(x):
        return f"{x[0]:+5.2f}/{x[1]:+5.2f}" if x else "      -    "

    for r in res:
        tr = " | ".join(f"{r['trumpet'][w][0]:+6.2f}/{r['trumpet'][w][1]:+6.2f}" for w in WINDOWS_MIN)
        e1 = f"{r['edge1_h']:.2f} h" if r["edge1_h"] is not None else "-"
        print(f"{r['name']:>8} {r['seed']:>4} {r['variant']:>7} {r['pl']:>7} "
              f"{r['bias'] * 100:+5.2f}% | {r['err24']:+6.2f}% | {tr} | {pair(r['h2_31'])} "
              f"| {pair(r['h24_31'])} | {pair(r['known_31'])} | {e1}")
    print()
    cal = [r for r in res if r["variant"] == "cal"]
    for r in cal:
        print(f"  unit {r['seed']} {r['name']:>8}: calibration {r['cal_nl']} nL over {r['cal_steps']} steps -> "
              f"{r['pl']} pL/step (true mean {plantmod.NOMINAL_PL_PER_STEP * (1 + r['bias']):.0f} at rest); "
              f"firmware's own count {r['fw_err24']:+.2f} % vs prescription; alarms {r['alarms'] or 'none'}, "
              f"withheld {r['withheld']}, reserve waits {r['waits']}, skipped {r['skipped_ms']} ms; index edges "
              f"{r['plant_edges']} (firmware accepted {r['edges']}, bounce {r['early_edges']}); the first edge "
              f"re-priced the blind steps by {r['repriced_nl']:+.1f} nL (estimate {r['reprice_est_nl']:+.1f})")
    print("\ncalibration procedure: pl_per_step found, and the delivery error it leaves (true/found - 1)")
    for c in cals:
        print(f"  unit {c['seed']}: docs/hardware.md (20 ms/step, pumpctl --mass-mg at 20 C): {c['doc'][0]} pL/step "
              f"-> {c['doc'][1]:+.2f} %; old (500 us/step, mg taken as uL): {c['old'][0]} pL/step -> "
              f"{c['old'][1]:+.2f} %")

    def worst(rows, key):
        xs = [max(abs(r[key][0]), abs(r[key][1])) for r in rows if r[key]]
        return max(xs) if xs else None

    def verdict(x, goal):
        return "-" if x is None else f"{x:.2f} % ({'met' if x <= goal else 'NOT MET'})"

    print(f"\nworst per schedule (goals: |24 h| <= 0.5 %, 31 min <= 2 %); 31 min windows: IEC periods h2 and "
          f"{last}, then ours: from hour 1, and known = from the first index edge")
    for variant in ("cal", "primed", "noindex"):
        for name in RX:
            rows = [r for r in res if r["variant"] == variant and r["name"] == name]
            if not rows:
                continue
            w24 = max(abs(r["err24"]) for r in rows)
            w31 = max(max(abs(r["trumpet"][31][0]), abs(r["trumpet"][31][1])) for r in rows)
            print(f"  {variant:>7} {name:>8}: |24 h| {verdict(w24, 0.5)}, 31 min "
                  f"h2 {verdict(worst(rows, 'h2_31'), 2)}, {last} {verdict(worst(rows, 'h24_31'), 2)}, "
                  f"from hour 1 {verdict(w31, 2)}, "
                  f"known {verdict(worst(rows, 'known_31'), 2)}; alarms "
                  f"{sorted({a for r in rows for a in r['alarms']}) or 'none'}")
    print(f"wall time {time.perf_counter() - t_start:.0f} s ({a.jobs} processes, {len(jobs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
