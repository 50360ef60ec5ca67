"""The sim plant's physics (boards/sim/rom/plant.py) against closed forms, under CPython.

Line: C dP/dt = Q - (P - Pout)/R - P/R_leak. The plant integrates it exactly for piecewise-constant flow,
so the comparisons below are tight; a wrong sign, a missing term or a units slip fails them by far.
"""

import io
import math
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "boards" / "sim" / "rom"))

import plant as plantmod  # noqa: E402
import simhw  # noqa: E402

C_UL_PER_PA = plantmod.COMPLIANCE_UL_PER_KPA / 1000.0
R_PA_S_PER_UL = plantmod.RESISTANCE_KPA_S_PER_UL * 1000.0
TAU_S = C_UL_PER_PA * R_PA_S_PER_UL
UL_PER_STEP = plantmod.NOMINAL_PL_PER_STEP * 1e-6


def ideal(seed=1, **kw):
    """A plant with an ideal head: no bias, scatter or pulsation (closed forms apply exactly)."""
    args = {"unit_bias": 0.0, "pulsation": 0.0, "step_scatter": 0.0, "pulsation_spread": 0.0,
            "pulsation_phase_steps": 0.0, "magnet_err_steps": (0.0, 0.0, 0.0)}
    args.update(kw)
    return plantmod.Plant(seed=seed, **args)


@pytest.fixture
def no_slip(monkeypatch):
    monkeypatch.setattr(plantmod, "SLIP_PER_PA", 0.0)


def test_documented_line_constants_are_what_the_formulas_give():
    # thick-walled tube and Poiseuille, recomputed here independently; values as in plant.py's comments
    def tube(id_mm, od_mm, length_mm):
        a, b = id_mm / 2, od_mm / 2
        return 2 * math.pi * a * a * 1.5 / 2.0e6 * b * b / (b * b - a * a) * length_mm * 1000

    c = tube(0.53, 1.4, 890) + tube(1.02, 2.74, 150) + 5.0 / 101.3
    assert plantmod.COMPLIANCE_UL_PER_KPA == pytest.approx(c, rel=1e-12)
    assert 0.5 < c < 0.8
    r = sum(8e-3 * (mm * 1e-3) / (math.pi * (d / 2 * 1e-3) ** 4) * 1e-12 for d, mm in ((0.53, 890), (1.02, 150)))
    assert plantmod.RESISTANCE_KPA_S_PER_UL == pytest.approx(r, rel=1e-12)
    assert 0.4 < r < 0.55


def test_pressure_step_response_is_the_exact_rc_solution(no_slip):
    p = ideal()
    n, dt_ms = 10, 10  # 10 steps every 10 ms: Q = 15 uL/s
    q = n * UL_PER_STEP / (dt_ms / 1000)
    qr = q * R_PA_S_PER_UL
    for k in range(1, 301):  # 3 s, ~10 tau
        p.step(dt_ms, n)
        t = k * dt_ms / 1000
        exact = plantmod.OUTLET_PA + qr * (1 - math.exp(-t / TAU_S))
        assert p.true_pressure_pa() == pytest.approx(exact, abs=1e-9 * qr), t
    # decay back once the pump stops
    p0 = p.true_pressure_pa()
    for k in range(1, 101):
        p.step(dt_ms, 0)
        exact = plantmod.OUTLET_PA + (p0 - plantmod.OUTLET_PA) * math.exp(-k * dt_ms / 1000 / TAU_S)
        assert p.true_pressure_pa() == pytest.approx(exact, abs=1e-9 * qr)


def test_one_long_step_equals_many_short_ones(no_slip):
    # exact for any dt: 1 s at once vs 100 x 10 ms with the same constant flow
    a, b = ideal(), ideal()
    a.step(1000, 1000)
    for _ in range(100):
        b.step(10, 10)
    assert a.true_pressure_pa() == pytest.approx(b.true_pressure_pa(), rel=1e-12)
    assert a.delivered_ul == pytest.approx(b.delivered_ul, rel=1e-12)


def test_steady_state_pressure_is_q_r_plus_tip():
    p = ideal()
    n, dt_ms = 20, 100  # 3 uL/s
    for _ in range(100):  # 10 s = ~35 tau
        p.step(dt_ms, n)
    q = n * UL_PER_STEP / (dt_ms / 1000)
    # back-slip lowers the flow by SLIP_PER_PA x P: solve P = Pout + q (1 - s P) R
    s = plantmod.SLIP_PER_PA
    expect = (plantmod.OUTLET_PA + q * R_PA_S_PER_UL) / (1 + q * R_PA_S_PER_UL * s)
    assert p.true_pressure_pa() == pytest.approx(expect, rel=1e-6)
    # and the outflow equals the pumped flow: the line stores nothing more
    d0, v0 = p.delivered_ul, p.pumped_ul
    p.step(dt_ms, n)
    assert p.delivered_ul - d0 == pytest.approx(p.pumped_ul - v0, rel=1e-6)


def test_volume_is_conserved_through_faults():
    p = plantmod.Plant(seed=5)  # everything on: bias, scatter, pulsation, slip
    res0 = p.reservoir
    seq = [(100, 3), (100, 0), (2500, 40), (100, 1)] * 50
    faults = [("occlusion", {}), ("leak", {"r_kpa_s_per_ul": 0.2}), ("occlusion", {"k": 20.0}),
              ("disconnect", {}), (None, None)]
    for i, (dt, n) in enumerate(seq):
        if i % 40 == 0:
            p.clear()
            f, kw = faults[(i // 40) % len(faults)]
            if f:
                p.inject(f, **kw)
        p.step(dt, n)
        out = p.delivered_ul + p.leaked_ul + p.stored_ul()
        assert out == pytest.approx(p.pumped_ul, abs=1e-9 * max(1.0, p.pumped_ul))
        assert res0 - p.reservoir == pytest.approx(p.pumped_ul, abs=1e-9)  # 20 mL - x: float cancellation
    assert p.leaked_ul > 1.0 and p.pumped_ul > 1.0
    # a leak to ambient below the tip pressure draws fluid back through the catheter: counted, signed
    assert p.delivered_ul < 0


def test_full_occlusion_raises_pressure_at_q_over_c(no_slip):
    p = ideal()
    p.inject("occlusion")
    d0 = p.delivered_ul
    n, dt_ms, ticks = 2, 100, 50  # 0.3 uL/s for 5 s
    for _ in range(ticks):
        p.step(dt_ms, n)
    rise = n * ticks * UL_PER_STEP / C_UL_PER_PA
    assert p.true_pressure_pa() - plantmod.OUTLET_PA == pytest.approx(rise, rel=1e-9)
    assert p.delivered_ul == d0
    # clearing it releases the stored volume as a bolus through the catheter
    stored = p.stored_ul()
    p.clear("occlusion")
    p.step(10_000, 0)
    assert p.delivered_ul - d0 == pytest.approx(stored, rel=1e-6)
    assert p.true_pressure_pa() == pytest.approx(plantmod.OUTLET_PA, abs=1e-3)


def test_partial_occlusion_multiplies_the_flow_pressure(no_slip):
    p = ideal()
    p.inject("occlusion", k=10.0)
    q = 1 * UL_PER_STEP / 0.1
    for _ in range(400):  # 40 s = 14 x (10 tau)
        p.step(100, 1)
    assert p.true_pressure_pa() == pytest.approx(plantmod.OUTLET_PA + 10 * q * R_PA_S_PER_UL, rel=1e-3)


def test_leak_and_disconnection_lower_the_pressure(no_slip):
    q = 10 * UL_PER_STEP / 0.1
    r_leak = 0.2 * 1000.0  # Pa s/uL
    base, leak, disc = ideal(), ideal(), ideal()
    leak.inject("leak", r_kpa_s_per_ul=0.2)
    disc.inject("disconnect")
    for _ in range(100):
        for x in (base, leak, disc):
            x.step(100, 10)
    gc, gl = 1 / R_PA_S_PER_UL, 1 / r_leak
    expect = (q + gc * plantmod.OUTLET_PA) / (gc + gl)  # node balance
    assert leak.true_pressure_pa() == pytest.approx(expect, rel=1e-9)
    assert leak.true_pressure_pa() < base.true_pressure_pa() - 500
    # disconnected: nothing reaches the tip, the flow goes out of the stub at P = Q R_stub
    d0 = disc.delivered_ul
    disc.step(100, 10)
    assert disc.delivered_ul == d0
    assert disc.true_pressure_pa() == pytest.approx(q * plantmod.DISCONNECT_KPA_S_PER_UL * 1000, rel=1e-6)
    assert disc.true_pressure_pa() < 50


def test_stall_stops_the_flow():
    p = plantmod.Plant(seed=3)
    for _ in range(20):
        p.step(100, 5)
    p.inject("stall")
    assert p.motor_diag()
    v0, d0, moved0 = p.pumped_ul, p.delivered_ul, p.steps_moved
    for _ in range(100):
        assert p.step(100, 5) == 0
    assert p.pumped_ul == v0
    assert p.steps_moved == moved0 and p.steps_in == 600
    assert p.true_pressure_pa() == pytest.approx(plantmod.OUTLET_PA, abs=1e-6)  # drained to the tip
    assert p.delivered_ul > d0  # only what the line held
    p.clear("stall")
    p.inject("stall", diag=False)  # StallGuard silent
    assert not p.motor_diag()
    assert p.step(100, 5) == 0
    p.clear()
    assert p.step(100, 5) == 5 and p.pumped_ul > v0


def test_slip_fault_turns_the_rotor_without_pumping():
    p = plantmod.Plant(seed=3)
    p.inject("slip")
    r0 = p.rotor_step
    assert p.step(100, 7) == 7
    assert p.pumped_ul == 0 and p.rotor_step == (r0 + 7) % plantmod.STEPS_PER_REV


def test_empty_reservoir_pumps_no_drug():
    p = ideal(reservoir_ul=0.5)
    for _ in range(100):
        p.step(100, 10)  # 15 uL asked
    assert p.reservoir == 0.0
    assert p.pumped_ul == pytest.approx(0.5, rel=1e-12)


def test_pulsation_has_zero_mean_over_a_revolution(no_slip):
    p = ideal(pulsation=plantmod.PULSATION)
    n = plantmod.STEPS_PER_REV  # three roller passes
    p.step(1000, n)
    assert p.pumped_ul == pytest.approx(n * UL_PER_STEP, rel=1e-9)
    # but not over a third of a pass: the ripple is there
    q = ideal(pulsation=plantmod.PULSATION)
    q.rotor_step = 0
    q.step(1000, plantmod.STEPS_PER_REV // 12)  # the crest quarter of the first pass
    assert q.pumped_ul > plantmod.STEPS_PER_REV // 12 * UL_PER_STEP * 1.1


def test_unit_bias_stays_in_its_documented_band():
    biases = [plantmod.Plant(seed=s).unit_bias for s in range(200)]
    assert all(abs(b) <= plantmod.UNIT_BIAS_MAX for b in biases)
    assert max(biases) > 0.5 * plantmod.UNIT_BIAS_MAX and min(biases) < -0.5 * plantmod.UNIT_BIAS_MAX


def test_step_scatter_sigma_is_the_documented_value(no_slip):
    p = ideal(step_scatter=plantmod.STEP_SCATTER)
    vols = []
    for _ in range(20000):
        v0 = p.pumped_ul
        p.step(100, 1)
        vols.append((p.pumped_ul - v0) / UL_PER_STEP)
    assert statistics.fmean(vols) == pytest.approx(1.0, abs=0.002)
    assert statistics.pstdev(vols) == pytest.approx(plantmod.STEP_SCATTER, rel=0.03)
    # independent per step: n steps at once scatter by sqrt(n), so it averages out over many steps
    vols = []
    for _ in range(10000):
        v0 = p.pumped_ul
        p.step(100, 16)
        vols.append((p.pumped_ul - v0) / UL_PER_STEP / 16)
    assert statistics.pstdev(vols) == pytest.approx(plantmod.STEP_SCATTER / 4, rel=0.04)


def test_sensor_noise_sigma_is_the_documented_value():
    p = plantmod.Plant(seed=9, diurnal_c=0.0)
    xs = []
    for _ in range(40000):
        p.step(100, 0)
        xs.append(p.pressure_pa())
    # documented: ADC_NOISE_LSB rms per conversion, mean of OVERSAMPLE -> / sqrt(OVERSAMPLE), in Pa;
    # reading quantisation (1/16 LSB, then whole Pa) adds under 1 Pa in quadrature
    sigma_pa = plantmod.ADC_NOISE_LSB / math.sqrt(plantmod.OVERSAMPLE) / plantmod.CODES_PER_PA
    assert 20 < sigma_pa < 23
    assert statistics.pstdev(xs) == pytest.approx(sigma_pa, rel=0.03)
    # the mean is the true pressure within the datasheet's offset and gain accuracy
    err = statistics.fmean(xs) - p.true_pressure_pa()
    assert abs(err) <= plantmod.ACCURACY_FSS * plantmod.SENSOR_FSS_PA * 1.05
    assert abs(err - p.s_offset_pa - (p.s_gain - 1) * p.true_pressure_pa()) < 1.0


def test_sensor_diurnal_drift_amplitude():
    p = plantmod.Plant(seed=9, adc_noise_lsb=0.0, dnl_width_lsb=0.0)
    xs = []
    for _ in range(24 * 60):
        p.step(60_000, 0)
        xs.append(p.pressure_pa())
    swing = (max(xs) - min(xs)) / 2
    assert swing == pytest.approx(plantmod.DIURNAL_C * plantmod.TEMPCO_PA_PER_C, abs=2.0)


def test_sensor_faults_read_as_out_of_band():
    for mode in ("open", "short"):
        p = plantmod.Plant(seed=2)
        p.inject("sensor", mode=mode)
        with pytest.raises(ValueError):
            p.pressure_pa()
    p = plantmod.Plant(seed=2)
    p.inject("sensor", mode="stuck")
    first = p.adc_x16()
    p.inject("occlusion")
    for _ in range(20):
        p.step(100, 10)
    assert p.adc_x16() == first and p.true_pressure_pa() > 3000


def test_bad_fault_arguments_are_refused():
    p = plantmod.Plant(seed=2)
    for fault, kw in (("nope", {}), ("occlusion", {"k": 0.5}), ("leak", {"r_kpa_s_per_ul": 0}),
                      ("sensor", {"mode": "wobbly"}), ("battery", {"soc": 1.5})):
        with pytest.raises(ValueError):
            p.inject(fault, **kw)
    assert p.faults == {}
    with pytest.raises(ValueError):
        p.step(-1, 0)


def run_script(p):
    out = []
    for i in range(600):
        if i == 200:
            p.inject("occlusion")
        if i == 400:
            p.clear("occlusion")
        p.step(100, (i * 7) % 5)
        out.append((p.pressure_pa(), p.delivered_ul, p.rotor_step, p.battery_mv()))
    return out


def test_deterministic_for_a_seed():
    a, b = run_script(plantmod.Plant(seed=42)), run_script(plantmod.Plant(seed=42))
    assert a == b
    c = run_script(plantmod.Plant(seed=43))
    assert c != a
    assert plantmod.Plant(seed=42).unit_bias != plantmod.Plant(seed=43).unit_bias


def test_xorshift_gauss_is_standard_normal():
    g = plantmod.XorShift32(7)
    xs = [g.gauss() for _ in range(50000)]
    assert abs(statistics.fmean(xs)) < 0.02
    assert statistics.pstdev(xs) == pytest.approx(1.0, abs=0.015)


class _Clock:
    PERIOD = 1 << 30

    def __init__(self, t):
        self.t = t

    def raw_ticks_ms(self):
        return self.t & (self.PERIOD - 1)

    def ticks_diff(self, a, b):
        d = (a - b) & (self.PERIOD - 1)
        return d - self.PERIOD if d >= self.PERIOD // 2 else d


def test_world_snapshot_restore_round_trips():
    f = io.StringIO()
    clock = _Clock((1 << 30) - 5000)  # across the 2**30 wrap
    w = simhw.World(clock, f, 17)
    w.motor.enable(True)
    w.motor.move(300, 1000)
    for _ in range(200):
        clock.t += 100
        w.sync()
    w.plant.inject("occlusion")
    w.plant.inject("leak", r_kpa_s_per_ul=0.3)
    w.plant.inject("battery", drain_ma=5.0)
    w.motor.move(200, 1000)
    clock.t += 100
    w.sync()
    w.save()
    w2 = simhw.World(_Clock(0), f, 17)  # a board reset: new clock, same world file
    a, b = w.plant, w2.plant
    for k in simhw._PERSIST:
        assert getattr(b, k) == getattr(a, k), k
    assert b.faults == a.faults and b.faults["occlusion"]["k"] == float("inf")
    assert b.gc == a.gc == 0.0 and b.gl == a.gl
    assert b.true_pressure_pa() > plantmod.OUTLET_PA
    # the restored world runs on from the same state: same pressure one step later without pumping
    a.step(1000, 0)
    b.step(1000, 0)
    assert b.true_pressure_pa() == pytest.approx(a.true_pressure_pa(), rel=1e-12)


def test_faults_set_at_once_take_effect_and_replace_the_others():
    p = plantmod.Plant(seed=3)
    p.inject("leak", r_kpa_s_per_ul=0.3)
    p.set_faults({"occlusion": {"k": float("inf")}, "backpressure": {"pa": 9000.0}})
    assert p.gc == 0.0 and p.gl == 0.0 and p.outlet == 9000.0 and sorted(p.faults) == ["backpressure", "occlusion"]
    p.set_faults({})
    assert p.gc == p.g0 and p.outlet == p.outlet0


def test_world_ignores_a_torn_snapshot():
    f = io.StringIO('{"p": 5000.0, "reservoir": 1')
    w = simhw.World(_Clock(0), f, 17)
    assert w.plant.p == plantmod.OUTLET_PA and w.plant.reservoir == plantmod.RESERVOIR_UL


# -- rotor index (Hall switch, one magnet per roller) and the unit's flow profile ------------------
SPP = plantmod.STEPS_PER_REV / plantmod.ROLLERS


def edges_one_by_one(p, n):
    """Reference: the rotor walked one microstep at a time, an edge each time it reaches a magnet."""
    e, s = 0, p.rotor_step
    for _ in range(n):
        s = (s + 1) % plantmod.STEPS_PER_REV
        e += s in p.magnets
    return e


def test_index_gives_one_edge_per_roller_pass_for_any_chunking():
    p = plantmod.Plant(seed=21)
    assert len(p.magnets) == plantmod.ROLLERS == 3
    for chunk in (1, 7, 333, 1066, 1067, 3200, 9999):
        e0, n = p.index_edges, 3 * plantmod.STEPS_PER_REV + chunk
        expect = edges_one_by_one(p, n)
        done = 0
        while done < n:
            k = min(chunk, n - done)
            p.step(100, k)
            done += k
        assert p.index_edges - e0 == expect, chunk
        assert expect in (9 + chunk * 3 // plantmod.STEPS_PER_REV, 10 + chunk * 3 // plantmod.STEPS_PER_REV)
    # a whole number of revolutions in one call: exactly 3 per revolution, wherever the rotor starts
    e0 = p.index_edges
    p.step(1000, 7 * plantmod.STEPS_PER_REV)
    assert p.index_edges - e0 == 21


def test_index_edge_is_at_the_magnet_angle():
    p = plantmod.Plant(seed=4)
    m = p.magnets[1]
    p.rotor_step = m - 2
    p.step(100, 1)
    assert p.index_edges == 0
    p.step(100, 1)  # reaches the magnet's angle
    assert p.index_edges == 1 and p.rotor_step == m
    p.step(100, 1)
    assert p.index_edges == 1


def test_no_edges_while_stalled_but_while_slipping():
    p = plantmod.Plant(seed=3)
    p.inject("stall", diag=False)
    for _ in range(50):
        p.step(1000, 500)  # 25,000 steps pulsed: > 23 passes
    assert p.index_edges == 0 and p.steps_moved == 0
    p.clear()
    p.inject("slip")  # the rotor turns, the tube does not pump: the index still sees the rotor
    p.step(1000, plantmod.STEPS_PER_REV)
    assert p.index_edges == 3 and p.pumped_ul == 0


def test_per_unit_head_geometry_stays_in_its_documented_bands():
    units = [plantmod.Plant(seed=s) for s in range(200)]
    err = [e for u in units for e in u.magnet_err_steps]
    lim = plantmod.MAGNET_ERR_PASS * SPP
    assert all(abs(e) <= lim for e in err) and max(err) > 0.8 * lim and min(err) < -0.8 * lim
    for u in units:
        for k, m in enumerate(u.magnets):
            d = (m - k * SPP + plantmod.STEPS_PER_REV / 2) % plantmod.STEPS_PER_REV - plantmod.STEPS_PER_REV / 2
            assert abs(d - u.magnet_err_steps[k]) <= 0.5 + 1e-9  # the nearest whole microstep
    amp = [u.pulsation / plantmod.PULSATION - 1 for u in units]
    assert all(abs(a) <= plantmod.PULSATION_SPREAD + 1e-12 for a in amp) and max(amp) - min(amp) > 0.15
    ph = [u.pulsation_phase_steps for u in units]
    assert all(abs(x) <= plantmod.PULSATION_PHASE_PASS * SPP for x in ph) and max(ph) - min(ph) > 0.08 * SPP
    # a new stream: the quantities drawn before the rotor's keep their values for a seed
    assert plantmod.Plant(seed=7).unit_bias == plantmod.Plant(seed=7, magnet_err_steps=(0, 0, 0)).unit_bias


def bench_profile(p, bins=32, lag=0):
    """Reference: the plant pumped one step at a time from each magnet's edge over its pass; the
    measured volume of step i (lagged by `lag` steps, as the flow meter sees it) goes to bin
    floor(i bins / spp); ppm of the mean over all steps."""
    sums, counts = [0.0] * bins, [0] * bins
    for m in p.magnets:
        vols = []
        p.rotor_step = (m - lag) % plantmod.STEPS_PER_REV
        for _ in range(int(SPP) + 1):
            v0 = p.pumped_ul
            p.step(0, 1)
            vols.append(p.pumped_ul - v0)
        for i, v in enumerate(vols):
            j = i * bins * 3 // plantmod.STEPS_PER_REV
            if j < bins:
                sums[j] += v
                counts[j] += 1
    mean = sum(sums) / sum(counts)
    return [(sums[j] / counts[j] / mean - 1) * 1e6 for j in range(bins)], counts


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_profile_is_the_units_binned_per_step_volume(no_slip, seed):
    p = plantmod.Plant(seed=seed, step_scatter=0.0)
    for lag in (0, plantmod.PROFILE_LAG_STEPS):
        ref, counts = bench_profile(p, lag=lag)
        got = p.profile_ppm(noise_ppm=0, lag_steps=lag)
        assert len(got) == 32 and all(isinstance(x, int) for x in got)
        assert max(abs(a - b) for a, b in zip(got, ref, strict=True)) <= 1.0, (lag, got, ref)
        assert abs(sum(a * n for a, n in zip(got, counts, strict=True))) <= 32 * 34  # zero mean per step, to rounding
        # the cosine: bin 0 near the crest, the trough half a pass on, amplitude near the unit's
        assert max(got) == pytest.approx(p.pulsation * 1e6, rel=0.03)
        assert got.index(max(got)) in (30, 31, 0, 1, 2) and 14 <= got.index(min(got)) <= 18  # phase +-1.6 bins
    # per-magnet placement is in: an ideal head with perfect magnets gives the pure cosine bin means
    q = ideal(pulsation=plantmod.PULSATION)
    ideal_ppm = q.profile_ppm(noise_ppm=0, lag_steps=0)
    w = 2 * math.pi / SPP
    mags = [round(k * SPP) for k in range(3)]
    means, counts = [], []
    for j in range(32):  # 1 + A cos integrated over the bin's steps, averaged over the three passes
        lo, hi = -(-j * 3200 // 96), -(-(j + 1) * 3200 // 96)  # ceil(j spp / 32), in integers
        cos_int = sum(math.sin(w * (m + hi)) - math.sin(w * (m + lo)) for m in mags) / (3 * w)
        means.append(1 + plantmod.PULSATION * cos_int / (hi - lo))
        counts.append(hi - lo)
    # over the binned steps (1067, not 1066.7)
    mean = sum(m * n for m, n in zip(means, counts, strict=True)) / sum(counts)
    for x, m in zip(ideal_ppm, means, strict=True):
        assert x == pytest.approx((m / mean - 1) * 1e6, abs=1.0)
    lagged = p.profile_ppm(noise_ppm=0, lag_steps=plantmod.PROFILE_LAG_STEPS)
    assert p.profile_ppm(noise_ppm=0) == lagged != p.profile_ppm(noise_ppm=0, lag_steps=0)  # lag by default


def test_profile_measurement_error_is_the_documented_noise_and_deterministic():
    devs = []
    for seed in range(30):
        p = plantmod.Plant(seed=seed)
        got = p.profile_ppm()
        assert got == p.profile_ppm() == plantmod.Plant(seed=seed).profile_ppm()  # per seed, repeatable
        exact = p.profile_ppm(noise_ppm=0)
        devs += [a - b for a, b in zip(got, exact, strict=True)]
        assert all(-500000 <= x <= 500000 for x in got)
    # the measured bin relative to the measured mean: noise_ppm rms per bin (minus the renormalisation)
    rms = statistics.pstdev(devs)
    assert rms == pytest.approx(plantmod.PROFILE_NOISE_PPM, rel=0.1)
    assert abs(statistics.fmean(devs)) < 0.1 * plantmod.PROFILE_NOISE_PPM
    assert plantmod.Plant(seed=1).profile_ppm() != plantmod.Plant(seed=2).profile_ppm()


def test_world_persists_the_index_count_and_the_rotor_reads_it_masked():
    f = io.StringIO()
    clock = _Clock(0)
    w = simhw.World(clock, f, 17)
    rotor = simhw.SimRotor(w)
    w.motor.enable(True)
    w.motor.move(5000, 1000)  # 5 s, 4.7 passes
    clock.t += 6000
    assert rotor.edges() == w.plant.index_edges in (4, 5)
    w.save()
    w2 = simhw.World(_Clock(123), f, 17)  # a board reset: the count runs on (free-running, compare deltas)
    assert simhw.SimRotor(w2).edges() == rotor.edges() and w2.plant.rotor_step == w.plant.rotor_step
    w2.plant.index_edges = (1 << 30) + 5
    assert simhw.SimRotor(w2).edges() == 5  # wraps at 2**30 like the rp2 counter
