"""Occlusion / leak / stall detection figures: the firmware's detector (firmware/itpump/occlusion.py)
driven by the sim plant at the 100 ms control tick, no app needed; per rate, time-to-alarm against the
physical limit, volumes missed and released, false alarms (docs/figures.md: each figure, the oracle)."""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "boards" / "sim" / "rom"))

import plant as plantmod  # noqa: E402
from itpump import occlusion  # noqa: E402

TICK_MS = 100
RATES_ML_DAY = (0.1, 0.5, 5.0)
# (label, plant fault, its arguments, the code the detector should return)
FAULTS = (
    ("disconnection at the pump", "disconnect", {}, occlusion.LEAK),
    ("leak 0.05 kPa s/uL (~90 % of flow)", "leak", {"r_kpa_s_per_ul": 0.05}, occlusion.LEAK),
    ("leak = R catheter (~half the flow)", "leak", {"r_kpa_s_per_ul": plantmod.RESISTANCE_KPA_S_PER_UL},
     occlusion.LEAK),
    # a kinked catheter: the flow still gets through (the pump displaces it), the pressure rises to Q R k
    ("partial occlusion, R x 20", "occlusion", {"k": 20.0}, occlusion.OCCLUSION),
    ("partial occlusion, R x 100", "occlusion", {"k": 100.0}, occlusion.OCCLUSION),
    ("stall, driver DIAG high", "stall", {"diag": True}, occlusion.STALL),
    ("stall, DIAG silent (pressure only)", "stall", {"diag": False}, occlusion.STALL),
)
MS_PER_DAY = 86_400_000
# calibration error given to the detector (what the firmware believes vs the plant's truth)
C_CAL = 0.75
R_CAL = 1.30


def calibrate(seed: int) -> dict:
    """What a board calibration would store: nominal volume/step, C and R off by the factors above,
    the noise of one reading measured over 60 s of a quiet, primed line."""
    p = plantmod.Plant(seed=seed + 1000)
    xs = []
    for _ in range(600):
        p.step(TICK_MS, 0)
        xs.append(p.pressure_pa())
    return {
        "pl_per_step": plantmod.NOMINAL_PL_PER_STEP,
        "compliance_nl_per_kpa": int(plantmod.COMPLIANCE_UL_PER_KPA * 1000 * C_CAL),
        "resistance_pa_s_per_ul": int(plantmod.RESISTANCE_KPA_S_PER_UL * 1000 * R_CAL),
        "noise_pa": max(1, round(statistics.pstdev(xs))),
        "noise_measured_pa": statistics.pstdev(xs),
    }


class Rig:
    """Plant + step issue from a rate (carried remainder) + detector, one control tick at a time."""

    def __init__(self, rate_ml_day: float, seed: int, cal: dict):
        self.plant = plantmod.Plant(seed=seed)
        self.det = occlusion.Detector(cal["pl_per_step"], cal["compliance_nl_per_kpa"],
                                      cal["resistance_pa_s_per_ul"], cal["noise_pa"], tick_ms=TICK_MS)
        self.rate_pl_per_day = int(rate_ml_day * 1e9)  # mL -> pL
        self.den = cal["pl_per_step"] * MS_PER_DAY
        self.acc = 0
        self.pumping = True
        self.ticks = 0
        self.last = occlusion.OK
        self.seen = set()  # every non-OK code returned so far

    def steps_due(self) -> int:
        """This tick's steps at the rate, the remainder carried (0 while the pump is stopped)."""
        if not self.pumping:
            return 0
        self.acc += self.rate_pl_per_day * TICK_MS
        steps = self.acc // self.den
        self.acc -= steps * self.den
        return steps

    def tick(self) -> int:
        steps = self.steps_due()
        p = self.plant
        p.step(TICK_MS, steps)  # returns the steps the rotor turned: the firmware cannot see those
        try:
            pa = p.pressure_pa()
        except ValueError:
            pa = None
        self.ticks += 1
        # confirmed = the pulses emitted, stalled or not, as the PIO (and the sim driver) report them
        self.last = r = self.det.update(pa, steps, steps, p.motor_diag())
        if r:
            self.seen.add(r)
        return r

    def run_until(self, codes: tuple, max_ticks: int) -> int | None:
        for i in range(max_ticks):
            if self.tick() in codes:
                return i + 1
        return None


def physical_limit_s(rate_ml_day: float, plant: plantmod.Plant, sigma_pa: float) -> float:
    q_ul_s = rate_ml_day * 1000 / 86400 * (1 + plant.unit_bias)
    return 3 * sigma_pa * plant.c_ul_per_pa / q_ul_s


def warm(rig: Rig, rate_ml_day: float, trial: int) -> None:
    # 20 min of normal pumping, then a trial-dependent phase within one step interval
    rig.run_until((), 12_000)
    step_ticks = max(1, int(rig.den / (rig.rate_pl_per_day * TICK_MS)))
    rig.run_until((), (trial * 7919) % step_ticks)


def occlusion_trial(args: tuple) -> dict:
    rate, trial, cal = args
    rig = Rig(rate, 100 + trial, cal)
    warm(rig, rate, trial)
    p = rig.plant
    limit = physical_limit_s(rate, p, cal["noise_measured_pa"])
    assert rig.det.armed()
    d0, t0 = p.delivered_ul, p.t_ms
    p.inject("occlusion")
    n = rig.run_until((occlusion.OCCLUSION,), max(int(limit * 50 * 10), 36_000))
    out = {"limit_s": limit}
    if n is None:
        out["t_s"] = None
        return out
    t_s = n * TICK_MS / 1000
    due_ul = rate * 1000 / 86400 * (1 + p.unit_bias) * (p.t_ms - t0) / 1000
    out.update(t_s=t_s, missed_ul=due_ul - (p.delivered_ul - d0), stored_ul=p.stored_ul(),
               est_missed_ul=rig.det.missed_nl() / 1000)
    # the app stops the motor on the alarm; the occlusion clears a minute later
    rig.pumping = False
    rig.run_until((), 600)
    stored_before = p.stored_ul()
    d1 = p.delivered_ul
    p.clear("occlusion")
    m = rig.run_until((occlusion.CLEARED,), 600)
    out.update(clear_s=None if m is None else m * TICK_MS / 1000, bolus_ul=p.delivered_ul - d1,
               bolus_stored_ul=stored_before, bolus_est_ul=rig.det.released_nl / 1000)
    return out


ORACLE_NATS = (15, 20)


def oracle_trial(args: tuple) -> dict:
    """What no detector can beat with these readings: an oracle that knows the onset tick, the plant's
    true line and the noise sigma. Its log likelihood ratio sum(mu^2 / 2 + mu e) / sigma^2, with mu =
    true p(blocked) - true p(open) for the same steps (a copy of the plant left open) and e the sensor's
    error less its offset before the onset. A real detector does not know the onset: with ~1e7 candidate
    onsets in 30 days at 5 mL/day it needs its threshold in nats well above the oracle's 15."""
    rate, trial, cal = args
    rig = Rig(rate, 100 + trial, cal)
    warm(rig, rate, trial)
    p = rig.plant
    sigma = cal["noise_measured_pa"]
    limit = physical_limit_s(rate, p, sigma)
    q = copy.deepcopy(p)
    errs = []
    for _ in range(100):
        q.step(TICK_MS, 0)
        errs.append(q.pressure_pa() - q.true_pressure_pa())
    off = statistics.mean(errs)
    open_line = copy.deepcopy(p)
    p.inject("occlusion")
    llr = 0.0
    hit: dict[int, float] = {}
    for t in range(1, 36_000):
        steps = rig.steps_due()
        p.step(TICK_MS, steps)
        open_line.step(TICK_MS, steps)
        mu = p.true_pressure_pa() - open_line.true_pressure_pa()
        e = p.pressure_pa() - p.true_pressure_pa() - off
        llr += (mu * mu / 2 + mu * e) / sigma ** 2
        for h in ORACLE_NATS:
            if h not in hit and llr >= h:
                hit[h] = t * TICK_MS / 1000 / limit
        if len(hit) == len(ORACLE_NATS):
            break
    return hit


def fault_trial(args: tuple) -> dict:
    rate, trial, cal, fault, kw, code = args
    rig = Rig(rate, 200 + trial, cal)
    warm(rig, rate, trial)
    p = rig.plant
    d0, t0 = p.delivered_ul, p.t_ms
    rig.seen.clear()
    p.inject(fault, **kw)
    n = rig.run_until((code,), 36_000)
    due_ul = rate * 1000 / 86400 * (1 + p.unit_bias) * (p.t_ms - t0) / 1000
    return {"t_s": None if n is None else n * TICK_MS / 1000, "missed_ul": due_ul - (p.delivered_ul - d0),
            "code": code, "due_ul": due_ul,
            "seen": sorted(occlusion.NAMES[c] for c in rig.seen)}


def no_fault_run(args: tuple) -> dict:
    rate, days, cal, seed = args
    rig = Rig(rate, seed, cal)
    t0 = time.perf_counter()
    alarms: dict[str, int] = {}
    prev = occlusion.OK
    for i in range(int(days * MS_PER_DAY / TICK_MS)):
        if i % 36_000 == 0 and rig.plant.reservoir < 2000.0:
            rig.plant.reservoir = plantmod.RESERVOIR_UL  # refilled (5 mL/day empties 20 mL in 4 days)
        r = rig.tick()
        if r != prev and r != occlusion.OK:
            alarms[occlusion.NAMES[r]] = alarms.get(occlusion.NAMES[r], 0) + 1
            if r in (occlusion.OCCLUSION, occlusion.LEAK, occlusion.STALL):
                rig.det.reset()  # the alarm would stop the pump; here, count it and carry on
        prev = r
    p = rig.plant
    return {"alarms": alarms, "wall_s": time.perf_counter() - t0, "delivered_ml": p.delivered_ul / 1000,
            "pumped_ml": p.pumped_ul / 1000,
            "sigma_est_pa": rig.det.sig_q8 / 256}


def fmt(x, unit="", nd=1):
    return "-" if x is None else f"{x:.{nd}f}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true",
                   help="4 onsets per rate, 0.25 day no-fault runs (the default, 12 and 2 days: about 2 min)")
    g.add_argument("--full", action="store_true",
                   help="24 onsets per rate, 30 day no-fault runs: the false-alarm figure, about 15 min")
    ap.add_argument("--days", type=float, default=None, help="no-fault run length per rate (default 2)")
    ap.add_argument("--trials", type=int, default=None, help="occlusion onsets per rate (default 12)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=INT",
                    help="try a detector tuning: override a module constant of itpump/occlusion.py in this run "
                         "(e.g. _KF_X8=8); the firmware file is not changed")
    a = ap.parse_args()
    for kv in a.set:  # worker processes are forked after this, so they see the override too
        name, _, v = kv.partition("=")
        if not hasattr(occlusion, name):
            ap.error(f"--set: itpump.occlusion has no {name}")
        setattr(occlusion, name, int(v))
        print(f"TUNING OVERRIDE (not the firmware's): occlusion.{name} = {int(v)}")
    if a.days is None:
        a.days = 0.25 if a.quick else 30.0 if a.full else 2.0
    if a.trials is None:
        a.trials = 4 if a.quick else 24 if a.full else 12
    t_start = time.perf_counter()
    cal = calibrate(1)
    print(f"plant: C {plantmod.COMPLIANCE_UL_PER_KPA:.3f} uL/kPa, R {plantmod.RESISTANCE_KPA_S_PER_UL:.3f} "
          f"kPa s/uL, {plantmod.NOMINAL_PL_PER_STEP / 1000:.1f} nL/step nominal, tip {plantmod.OUTLET_PA:.0f} Pa")
    print(f"detector calibration: C {cal['compliance_nl_per_kpa']} nL/kPa, R {cal['resistance_pa_s_per_ul']} "
          f"Pa s/uL, noise {cal['noise_measured_pa']:.1f} Pa per reading (one sigma)")
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        nf = {r: ex.submit(no_fault_run, (r, a.days, cal, 7)) for r in RATES_ML_DAY} if a.days > 0 else {}
        occ = {r: list(ex.map(occlusion_trial, [(r, i, cal) for i in range(a.trials)])) for r in RATES_ML_DAY}
        oracle = {r: list(ex.map(oracle_trial, [(r, i, cal) for i in range(a.trials)])) for r in RATES_ML_DAY}
        other = {(f[0], r): list(ex.map(fault_trial, [(r, i, cal, f[1], f[2], f[3]) for i in range(4)]))
                 for f in FAULTS for r in RATES_ML_DAY}
        nf = {r: f.result() for r, f in nf.items()}
    print()
    print(f"occlusion (full, distal), {a.trials} onsets per rate; times median [worst]")
    print(f"{'rate':>9} | {'limit':>7} | {'alarm':>15} | {'ratio':>11} | {'missed uL':>13} | {'(est)':>5} | "
          f"{'bolus uL (est)':>16} | {'clear':>6}")
    for r in RATES_ML_DAY:
        rows = occ[r]
        det = [x for x in rows if x["t_s"] is not None]
        lim = statistics.median(x["limit_s"] for x in rows)
        if not det:
            print(f"{r:>5} mL/d | {lim:6.1f}s | NOT DETECTED")
            continue
        ts = [x["t_s"] for x in det]
        ratios = [x["t_s"] / x["limit_s"] for x in det]
        miss = [x["missed_ul"] for x in det]
        bol = [x["bolus_ul"] for x in det]
        est = [x["bolus_est_ul"] for x in det]
        emiss = [x["est_missed_ul"] for x in det]
        clr = [x["clear_s"] for x in det if x["clear_s"] is not None]
        undetected = len(rows) - len(det)
        print(f"{r:>5} mL/d | {lim:6.1f}s | {statistics.median(ts):6.1f}s [{max(ts):5.1f}s] | "
              f"{statistics.median(ratios):4.2f} [{max(ratios):4.2f}] | {statistics.median(miss):5.3f} "
              f"[{max(miss):5.3f}] | {statistics.median(emiss):5.3f} | {statistics.median(bol):6.3f} "
              f"({statistics.median(est):5.3f}) | "
              f"{fmt(statistics.median(clr) if clr else None, 's')}"
              + (f"  ({undetected} not detected)" if undetected else ""))
    print("  oracle bound (onset and true line known; ratio median [worst] at a threshold of "
          + " and ".join(f"{h}" for h in ORACLE_NATS) + " nats):")
    for r in RATES_ML_DAY:
        print(f"  {r:>5} mL/d | " + " | ".join(
            f"{h} nats {statistics.median(x[h] for x in oracle[r]):4.2f} [{max(x[h] for x in oracle[r]):4.2f}]"
            for h in ORACLE_NATS))
    print()
    print("leak, partial occlusion and stall, 4 onsets each, 1 h max; due = drug due from the onset to the alarm (or\n"
          "the hour), missed = due - net delivered at the tip (a leak below the tip pressure also draws fluid back up\n"
          "the catheter; a partial occlusion lets the pumped flow through, so what it misses is what the line stores)")
    print(f"  {'fault':<34} {'rate':>9} | {'detected':>8} | {'median':>7} | {'worst':>7} | {'due uL':>8} | "
          f"{'missed uL':>9} | other codes")
    for name, *_ in FAULTS:
        for r in RATES_ML_DAY:
            rows = other[(name, r)]
            ts = [x["t_s"] for x in rows]
            got = [t for t in ts if t is not None]
            miss = [x["missed_ul"] for x in rows]
            due = [x["due_ul"] for x in rows]
            seen = sorted({c for x in rows for c in x["seen"]} - {occlusion.NAMES[rows[0]["code"]]})
            print(f"  {name:<34} {r:>4} mL/d | {len(got):>3}/{len(ts):<4} | "
                  f"{fmt(statistics.median(got) if got else None, 's'):>7} | "
                  f"{fmt(max(got) if got else None, 's'):>7} | "
                  f"{statistics.median(due):8.3f} | {statistics.median(miss):9.3f} | {', '.join(seen) or '-'}")
    if nf:
        print()
        print(f"no-fault runs, {a.days:g} simulated days each at the 100 ms tick")
        for r in RATES_ML_DAY:
            x = nf[r]
            print(f"  {r:>4} mL/d: false alarms {sum(x['alarms'].values())} {x['alarms'] or ''}, "
                  f"delivered {x['delivered_ml']:.2f} mL (pumped {x['pumped_ml']:.2f}), "
                  f"sigma est {x['sigma_est_pa']:.1f} Pa, "
                  f"wall {x['wall_s']:.0f} s")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s ({a.jobs} processes)")


if __name__ == "__main__":
    main()
