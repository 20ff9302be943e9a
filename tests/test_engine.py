"""Correctness of the engine (jaxsgd.simulate) against exact theory and independent references.

- NQM, staleness-free variants: the Monte Carlo mean error matches the exact recursion of SPEC §6.
- k_sync with zero staleness reproduces a plain optax loop (sgd, momentum, adam) with the same noise.
- k_async / k_batch_async reproduce a full-history NumPy reference (tests/reference_sgd.py) on the same
  timeline and noise, for every learning-rate rule.
- Reproducibility: grid vs single runs, replica count, chunking, devices, determinism, no recompiles.

Each distinct static configuration compiles (seconds), so runs are shared through module fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsgd
from jaxsgd import engine
from jaxsgd.delays import Exponential
from jaxsgd.lr import Compensating, Constant, DelayAdaptive, Polynomial, StalenessAware, Threshold
from jaxsgd.problems import NoisyQuadratic

sys.path.insert(0, str(Path(__file__).parent))
from reference_sgd import nqm_curvatures, nqm_noise, stale_sgd  # noqa: E402

DTYPE = jnp.zeros(()).dtype
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
    """Names of the XLA backend compilations that happen inside the block."""
    names: list[str] = []

    def listener(event, duration_secs, **kwargs):
        if event == BACKEND_COMPILE:
            names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# ============================================================================ 1. NQM vs exact recursion

NQM = NoisyQuadratic(dim=10, h_max=1.0, h_min=0.01, sigma2=1.0, init=1.0)


def recursion_by_hand(problem: NoisyQuadratic, eta: float, K: int, m: int, updates) -> np.ndarray:
    """E[F(w_j)] by iterating E[e_{j+1,i}^2] = (1 - eta h_i)^2 E[e_{j,i}^2] + eta^2 sigma2 h_i / (K m)
    coordinate by coordinate, in plain Python floats."""
    h = [float(x) for x in nqm_curvatures(problem.h_max, problem.h_min, problem.dim)]
    second = [problem.init**2] * problem.dim
    wanted = set(int(u) for u in updates)
    out = {}
    for j in range(max(wanted) + 1):
        if j in wanted:
            out[j] = 0.5 * sum(hi * s for hi, s in zip(h, second))
        second = [(1 - eta * hi) ** 2 * s + eta**2 * problem.sigma2 * hi / (K * m) for hi, s in zip(h, second)]
    return np.array([out[int(u)] for u in updates])


@pytest.mark.parametrize(
    "problem, eta, K, m",
    [
        (NQM, 0.1, 1, 1),
        (NQM, 0.7, 3, 2),
        (NoisyQuadratic(dim=5, h_max=2.0, h_min=0.5, sigma2=0.3, init=-2.0), 1.0, 4, 1),  # eta h = 2: a = 1
        (NoisyQuadratic(dim=3, h_max=1.0, h_min=0.25, sigma2=2.0), 1.0, 2, 3),  # eta h = 1: a = 0
        (NoisyQuadratic(dim=4, sigma2=0.0), 0.5, 1, 1),  # noiseless: pure contraction
        (NoisyQuadratic(dim=4, h_max=1.0, h_min=1.0), 2.5, 1, 1),  # unstable: grows
    ],
)
def test_expected_error_matches_hand_iterated_recursion(problem, eta, K, m):
    updates = np.array([0, 1, 2, 3, 7, 20, 50, 133])
    exact = problem.expected_error(eta, K, m, updates)
    assert exact.shape == updates.shape
    np.testing.assert_allclose(exact, recursion_by_hand(problem, eta, K, m, updates), rtol=1e-9, atol=0)
    assert exact[0] == pytest.approx(0.5 * problem.init**2 * np.sum(problem.curvatures()), rel=1e-12)


def test_expected_error_limits():
    """The floor of the recursion is sum_i eta sigma2 h_i / (2 K m (2 - eta h_i))."""
    h = NQM.curvatures()
    for eta, K, m in [(0.5, 1, 1), (1.5, 4, 2)]:
        floor = np.sum(eta * NQM.sigma2 * h / (2 * K * m * (2 - eta * h)))
        assert NQM.expected_error(eta, K, m, np.array([100_000]))[0] == pytest.approx(floor, rel=1e-9)
    np.testing.assert_allclose(nqm_curvatures(1.0, 0.01, 10), NQM.curvatures(), rtol=1e-12)


NQM_CASES = [
    pytest.param("k_sync", 4, 2, 1, (0.05, 0.3, 1.5), 3000, id="k_sync-P4-K2"),
    pytest.param("sync", 6, None, 1, (0.1, 0.8), 3000, id="sync-P6-K6", marks=pytest.mark.slow),
    pytest.param("k_batch_sync", 3, 5, 2, (0.05, 0.4, 1.6), 3000, id="k_batch_sync-P3-K5-m2"),
    pytest.param("k_sync", 8, 1, 1, (0.2, 1.0), 3000, id="k_sync-P8-K1", marks=pytest.mark.slow),
    pytest.param("k_batch_sync", 5, 2, 1, (0.1, 0.5, 1.8), 4000, id="k_batch_sync-P5-K2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("variant, P, K, m, etas, replicas", NQM_CASES)
def test_nqm_mean_error_matches_exact_recursion(variant, P, K, m, etas, replicas):
    res = jaxsgd.simulate(
        NQM, variant, P=P, K=K, delay=Exponential(1.0), lr=Constant(eta=list(etas)), updates=200, record_every=10,
        replicas=replicas, batch_size=m, seed=2024,
    )
    Keff = res.setting.K
    assert res.diverged_fraction.tolist() == [0.0] * len(etas)
    assert res.staleness_mean == 0.0 and res.fresh_fraction == 1.0
    curves = res.curves()
    worst = 0.0
    for eta in etas:
        c = curves[curves["eta"] == eta]
        updates = c["update"].to_numpy()
        mean, sem = c["error_mean"].to_numpy(), c["error_sem"].to_numpy()
        exact = NQM.expected_error(eta, Keff, m, updates)
        assert updates[0] == 0 and mean[0] == pytest.approx(exact[0], rel=1e-6)  # w_0 is deterministic
        assert np.all(sem[1:] > 0) and np.all(c["replicas_finite"] == replicas)
        z = (mean[1:] - exact[1:]) / sem[1:]
        worst = max(worst, float(np.max(np.abs(z))))
        assert np.all(np.abs(z) < 4.5), f"eta={eta}: z={np.round(z, 2)}"
        assert len(z) == 20
    # the test has power: the recursion with the wrong batch (1 gradient per update) is far off
    if Keff * m > 1:
        eta = etas[-1]
        c = curves[curves["eta"] == eta]
        wrong = NQM.expected_error(eta, 1, 1, c["update"].to_numpy()[1:])
        z_wrong = (c["error_mean"].to_numpy()[1:] - wrong) / c["error_sem"].to_numpy()[1:]
        assert np.max(np.abs(z_wrong)) > 10
    print(f"{variant} P={P} K={Keff} m={m}: max |z| = {worst:.2f}")


# ============================================================================ 2. k_sync == optax loop

PROB = NoisyQuadratic(dim=6, h_max=1.0, h_min=0.05, sigma2=0.5, init=1.0)
LOOP_U, LOOP_R, LOOP_SEED = 60, 10, 11
LOOP_ETAS = (0.05, 0.3, 1.2)
LOOP_KW = dict(delay=Exponential(1.0), updates=LOOP_U, record_every=1, seed=LOOP_SEED)


def optax_loop(problem, tx: optax.GradientTransformation, K: int, m: int, eps: np.ndarray) -> np.ndarray:
    """Plain mini-batch SGD with an optax optimizer, one Python step per update: the average of K
    fresh gradients at w_j has noise sqrt(sigma2 h / (K m)) eps_j. Returns errors at j = 0..updates."""
    h = jnp.asarray(problem.curvatures(), DTYPE)
    w = jnp.full(problem.dim, problem.init, DTYPE)
    state = tx.init(w)
    scale = jnp.sqrt(problem.sigma2 * h / (K * m))
    errors = [0.5 * jnp.sum(h * w * w)]
    for e in jnp.asarray(eps, DTYPE):  # eager, op by op: nothing to compile per call
        g = h * w + scale * e
        upd, state = tx.update(g, state, w)
        w = optax.apply_updates(w, upd)
        errors.append(0.5 * jnp.sum(h * w * w))
    return np.asarray(jnp.stack(errors), dtype=np.float64)


@pytest.fixture(scope="module")
def sgd_grid():
    """k_sync, P=4, K=2, a grid of 3 learning rates, 10 replicas, every update recorded."""
    return jaxsgd.simulate(PROB, "k_sync", P=4, K=2, lr=Constant(eta=list(LOOP_ETAS)), replicas=LOOP_R, **LOOP_KW)


@pytest.fixture(scope="module")
def sgd_singles():
    return {eta: jaxsgd.simulate(PROB, "k_sync", P=4, K=2, lr=Constant(eta=eta), replicas=LOOP_R, **LOOP_KW)
            for eta in LOOP_ETAS}


@pytest.mark.parametrize("replica", [0, 3, 9])
def test_k_sync_sgd_equals_optax_loop(sgd_grid, sgd_singles, replica):
    eps = nqm_noise(LOOP_SEED, replica, LOOP_U, PROB.dim)
    for g, eta in enumerate(LOOP_ETAS):
        ref = optax_loop(PROB, optax.sgd(eta), K=2, m=1, eps=eps)
        np.testing.assert_allclose(sgd_grid.records.error[g, replica], ref, rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(sgd_singles[eta].records.error[0, replica], ref, rtol=2e-5, atol=1e-7)
    # and the noise matters: another replica's noise gives a different trajectory
    other = optax_loop(PROB, optax.sgd(LOOP_ETAS[1]), K=2, m=1, eps=nqm_noise(LOOP_SEED, replica + 1, LOOP_U, PROB.dim))
    assert np.max(np.abs(sgd_grid.records.error[1, replica] - other) / other) > 1e-2


@pytest.mark.parametrize(
    "name, eta, tx",
    [
        ("adam", 0.05, optax.adam(0.05)),
        pytest.param("momentum", 0.1, optax.sgd(0.1, momentum=0.9), marks=pytest.mark.slow),
        pytest.param("nesterov", 0.1, optax.sgd(0.1, momentum=0.9, nesterov=True), marks=pytest.mark.slow),
    ],
)
def test_k_sync_optimizer_equals_optax_loop(name, eta, tx):
    seed, P, m = 5, 3, 2
    res = jaxsgd.simulate(
        PROB, "sync", P=P, delay=Exponential(2.0), lr=Constant(eta=eta), optimizer=jaxsgd.Optimizer(name),
        updates=50, record_every=1, replicas=2, batch_size=m, seed=seed,
    )
    assert res.optimizer.name == name
    for r in range(2):
        ref = optax_loop(PROB, tx, K=P, m=m, eps=nqm_noise(seed, r, 50, PROB.dim))
        np.testing.assert_allclose(res.records.error[0, r], ref, rtol=5e-5, atol=1e-7)
    # the stateful optimizer is not plain SGD
    sgd = optax_loop(PROB, optax.sgd(eta), K=P, m=m, eps=nqm_noise(seed, 0, 50, PROB.dim))
    assert np.max(np.abs(res.records.error[0, 0] - sgd) / sgd) > 1e-2


# ============================================================================ 3. stale variants vs reference

STALE_PROB = NoisyQuadratic(dim=8, h_max=1.0, h_min=0.05, sigma2=1.0, init=1.0)
STALE_U, STALE_R = 60, 3

STALE_CONFIGS = {  # id: (variant, P, K)
    "k_async-P4-K1": ("k_async", 4, 1),
    "k_async-P6-K3": ("k_async", 6, 3),
    "k_batch_async-P6-K1": ("k_batch_async", 6, 1),
    "k_batch_async-P5-K2": ("k_batch_async", 5, 2),
    "k_batch_async-P4-K6": ("k_batch_async", 4, 6),  # K > P: a worker pushes several times per update
}
STALE_RULES = {  # name: rule (with a grid, so one compile covers several parameter values)
    "constant": Constant(eta=[0.1, 0.4]),
    "compensating": Compensating(eta=0.4, C=[0.001, 0.05]),
    "polynomial": Polynomial(eta=0.5, a=[0.0, 1.0]),
    "threshold": Threshold(eta=0.3, bound=[0, 1, 3]),
    "staleness_aware": StalenessAware(eta=[0.3]),
    "delay_adaptive": DelayAdaptive(eta=[0.2]),
}
STALE_FAST = {  # every rule whose weight depends on staleness / distance on at least one fast config
    ("k_async-P4-K1", "constant"),
    ("k_async-P6-K3", "compensating"),
    ("k_batch_async-P5-K2", "threshold"),
    ("k_batch_async-P4-K6", "polynomial"),
}
STALE_CASES = [
    pytest.param(c, r, id=f"{c}-{r}", marks=() if (c, r) in STALE_FAST else pytest.mark.slow)
    for c in STALE_CONFIGS
    for r in STALE_RULES
]


@pytest.mark.parametrize("config, rule_name", STALE_CASES)
def test_stale_variants_match_full_history_reference(config, rule_name):
    variant, P, K = STALE_CONFIGS[config]
    rule = STALE_RULES[rule_name]
    seed = 7 + len(config)
    delay = Exponential(1.0)
    res = jaxsgd.simulate(STALE_PROB, variant, P=P, K=K, delay=delay, lr=rule, updates=STALE_U, record_every=1,
                          replicas=STALE_R, seed=seed)
    tl = jaxsgd.timeline(variant, P, K, delay=delay, updates=STALE_U, replicas=STALE_R, seed=seed)

    # the engine ran the same timeline
    np.testing.assert_array_equal(res.records.time[:, 1:], tl.time)
    np.testing.assert_allclose(res.records.staleness[:, 1:], tl.staleness.mean(axis=-1), rtol=1e-6)
    assert res.staleness_mean == pytest.approx(tl.staleness_mean, rel=1e-6)
    assert res.fresh_fraction == pytest.approx(tl.fresh_fraction, rel=1e-6)
    # and the timeline exercises what it should
    assert tl.staleness.max() > 0
    if K > P:
        repeats = [len(set(row)) < K for row in tl.worker.reshape(-1, K)]
        assert any(repeats), "no worker pushed twice within one update"

    h, w0 = STALE_PROB.curvatures(), np.full(STALE_PROB.dim, STALE_PROB.init)
    grid = rule.grid()
    weights_seen = []
    for r in range(STALE_R):
        eps = nqm_noise(seed, r, STALE_U, STALE_PROB.dim)
        for g in range(rule.grid_size):
            params = {k: v[g] for k, v in grid.items()}
            ref, applied = stale_sgd(h, w0, tl.staleness[r], eps, rule_name, params, P, STALE_PROB.sigma2,
                                     return_weights=True)
            weights_seen.append(applied.ravel())
            got = res.records.error[g, r]
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-8, err_msg=f"replica {r}, {params}")
            # teeth: ignoring staleness (every gradient at w_j) is far outside the tolerance
            fresh = stale_sgd(h, w0, np.zeros_like(tl.staleness[r]), eps, rule_name, params, P, STALE_PROB.sigma2)
            assert np.max(np.abs(got - fresh) / fresh) > 1e-3
    weights_seen = np.concatenate(weights_seen)
    if rule_name in ("compensating", "threshold", "polynomial", "staleness_aware"):
        assert np.any(weights_seen < 1) and np.any(weights_seen == 1), "the rule's weight never bites"


SEGMENT_CASES = {  # id: (variant, P, K, record_every, chunk, updates): the models a gradient reads come from the
    # ring of the current segment or from the per-worker table, across segments and chunks (engine.SEGMENT)
    "k_async-segments-of-1": ("k_async", 6, 2, 17, None, 68),  # record_every prime > SEGMENT: segments of 1 update
    "k_batch_async-2-segments-per-record-2-chunks": ("k_batch_async", 8, 2, 20, 40, 80),
    "k_async-P40-vmapped-timeline-3-chunks": ("k_async", 40, 4, 5, 30, 90),  # P > timeline.SMALL_P
    "async-5-updates-per-segment-4-chunks": ("async", 8, None, 1, 25, 100),
}


@pytest.mark.parametrize("config", list(SEGMENT_CASES))
def test_stale_models_across_segments_and_chunks(config):
    variant, P, K, every, chunk, U = SEGMENT_CASES[config]
    seed, R, delay, eta = 3, 2, Exponential(1.0), 0.3
    res = jaxsgd.simulate(STALE_PROB, variant, P=P, K=K, delay=delay, lr=Constant(eta), updates=U, record_every=every,
                          replicas=R, seed=seed, chunk=chunk)
    tl = jaxsgd.timeline(variant, P, K, delay=delay, updates=U, replicas=R, seed=seed)
    assert tl.staleness.max() > 5  # gradients from before the segment, and before the chunk
    h, w0 = STALE_PROB.curvatures(), np.full(STALE_PROB.dim, STALE_PROB.init)
    for r in range(R):
        eps = nqm_noise(seed, r, U, STALE_PROB.dim)
        ref = stale_sgd(h, w0, tl.staleness[r], eps, "constant", {"eta": eta}, P, STALE_PROB.sigma2)
        np.testing.assert_allclose(res.records.error[0, r], ref[::every], rtol=1e-5, atol=1e-8, err_msg=f"replica {r}")


# ============================================================================ 5. reproducibility


def test_padded_problem_runs_the_same_numbers(monkeypatch):
    """On CPU the engine runs NoisyQuadratic padded to whole vectors (engine.padded_problem): the
    records are those of the problem as given, bit for bit -- with stale gradients, a rule that reads
    the distance ||w_j - w_tau||^2 and an optimizer with state."""
    prob = NoisyQuadratic(dim=10)
    assert engine.padded_problem(prob, "cpu").dim == 16
    kw = dict(P=4, K=2, delay=Exponential(1.0), lr=Compensating(eta=0.4, C=[0.001, 0.05]), optimizer="adam",
              updates=60, record_every=3, replicas=5, seed=1)
    padded = jaxsgd.simulate(prob, "k_async", **kw)
    monkeypatch.setattr(engine, "padded_problem", lambda problem, platform: problem)
    plain = jaxsgd.simulate(prob, "k_async", **kw)
    assert padded.staleness_mean > 0.3
    np.testing.assert_array_equal(padded.records.error, plain.records.error)
    np.testing.assert_array_equal(padded.records.time, plain.records.time)
    assert not np.array_equal(padded.records.error[0], padded.records.error[1])  # the rule's C bites


def test_padded_problem_only_where_it_helps():
    prob = NoisyQuadratic(dim=10)
    assert engine.padded_problem(prob, "gpu") is prob  # accelerators: no remainder loops to save
    assert engine.padded_problem(NoisyQuadratic(dim=16), "cpu").dim == 16  # whole vectors already
    ls = jaxsgd.problems.LeastSquares()
    assert ls.dim % 8 and engine.padded_problem(ls, "cpu") is ls  # no padded view: runs as given


def test_grid_equals_separate_runs(sgd_grid, sgd_singles):
    for g, eta in enumerate(LOOP_ETAS):
        single = sgd_singles[eta]
        np.testing.assert_allclose(sgd_grid.records.error[g], single.records.error[0], rtol=1e-6, atol=0)
        np.testing.assert_array_equal(sgd_grid.records.time, single.records.time)
    assert sgd_grid.grid["eta"].tolist() == list(LOOP_ETAS)


def test_second_call_does_not_recompile_and_is_deterministic(sgd_grid):
    with count_compiles() as fresh:  # the counter does see compilations
        jax.jit(lambda x: x * 1.2345 + 0.5)(jnp.ones(3)).block_until_ready()
    assert fresh, "the compile listener saw nothing: the check below would be vacuous"
    with count_compiles() as names:
        again = jaxsgd.simulate(PROB, "k_sync", P=4, K=2, lr=Constant(eta=list(LOOP_ETAS)), replicas=LOOP_R, **LOOP_KW)
    assert names == [], f"recompiled: {names}"
    for field in ("time", "staleness", "error"):
        np.testing.assert_array_equal(getattr(again.records, field), getattr(sgd_grid.records, field))
    assert again.staleness_mean == sgd_grid.staleness_mean


def test_replica_independent_of_replica_count(sgd_grid):
    big = jaxsgd.simulate(PROB, "k_sync", P=4, K=2, lr=Constant(eta=list(LOOP_ETAS)), replicas=50, **LOOP_KW)
    np.testing.assert_array_equal(big.records.time[:LOOP_R], sgd_grid.records.time)
    np.testing.assert_allclose(big.records.error[:, :LOOP_R], sgd_grid.records.error, rtol=1e-6, atol=0)
    assert not np.allclose(big.records.error[:, LOOP_R:2 * LOOP_R], sgd_grid.records.error)


def test_replica_independent_of_chunk_size(sgd_grid):
    seen = []
    chunked = jaxsgd.simulate(PROB, "k_sync", P=4, K=2, lr=Constant(eta=list(LOOP_ETAS)), replicas=LOOP_R, chunk=7,
                              progress=lambda done, total: seen.append((done, total)), **LOOP_KW)
    assert len(seen) > 1 and seen[-1] == (LOOP_U, LOOP_U)  # really ran in several chunks
    np.testing.assert_array_equal(chunked.records.time, sgd_grid.records.time)
    np.testing.assert_allclose(chunked.records.error, sgd_grid.records.error, rtol=1e-6, atol=0)


TWO_DEVICE_SCRIPT = """
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", 2)
import numpy as np
import jaxsgd
from jaxsgd.delays import Exponential
from jaxsgd.lr import Constant
from jaxsgd.problems import NoisyQuadratic
assert len(jax.devices()) == 2, jax.devices()
kw = json.loads(sys.argv[1])
prob = NoisyQuadratic(**kw.pop("problem"))
res = jaxsgd.simulate(prob, "k_sync", P=4, K=2, lr=Constant(eta=kw.pop("etas")), delay=Exponential(1.0), **kw)
print(json.dumps({"devices": res.devices, "time": res.records.time.tolist(), "error": res.records.error.tolist()}))
"""


def test_replica_independent_of_device_count(sgd_grid):
    kw = dict(problem=dict(dim=PROB.dim, h_max=PROB.h_max, h_min=PROB.h_min, sigma2=PROB.sigma2, init=PROB.init),
              etas=list(LOOP_ETAS), updates=LOOP_U, record_every=1, seed=LOOP_SEED, replicas=7)  # 7: padded to 8
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(TWO_DEVICE_SCRIPT), json.dumps(kw)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2
    np.testing.assert_array_equal(np.asarray(got["time"]), sgd_grid.records.time[:7])
    np.testing.assert_allclose(np.asarray(got["error"]), sgd_grid.records.error[:, :7], rtol=1e-6, atol=0)


# ============================================================================ long runs


@pytest.mark.slow
def test_staleness_statistics_exact_in_long_runs():
    P, U = 100, 1_000_000
    res = jaxsgd.simulate(NoisyQuadratic(dim=1), "async", P=P, delay=jaxsgd.delays.Constant(1.0), lr=Constant(0.001),
                          updates=U, record_every=1000, replicas=1)
    # constant delays: worker i's first push has staleness i, every later one P - 1 (ties go to lower indices)
    exact = (P * (P - 1) / 2 + (U - P) * (P - 1)) / U
    np.testing.assert_allclose(res.records.staleness[0, 2:], P - 1, rtol=1e-6)
    assert res.staleness_mean == pytest.approx(exact, rel=1e-6)
