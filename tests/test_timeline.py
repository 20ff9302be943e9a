"""The timeline (SPEC §2, §3, §8): event-for-event against an independent event simulation, the
runtime and staleness theory within Monte Carlo error, invariances, and bad input."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from jaxsgd.delays import Constant, Exponential, ShiftedExponential
from jaxsgd.errors import ConfigError
from jaxsgd.timeline import from_compute_times, timeline
from jaxsgd.variants import resolve

try:  # tests/ may or may not be a package
    from . import reference_sim as ref
except ImportError:
    import reference_sim as ref


# ------------------------------------------------------------------ event for event vs the reference

EQUIV_UPDATES = 60

EQUIV_CASES = [
    ("k_sync", 4, 1),
    ("k_sync", 5, 2),
    ("k_sync", 4, 4),
    ("k_batch_sync", 1, 3),
    ("k_batch_sync", 3, 1),
    ("k_batch_sync", 3, 3),
    ("k_batch_sync", 3, 7),
    ("k_async", 4, 1),
    ("k_async", 5, 3),
    ("k_async", 4, 4),
    ("k_batch_async", 1, 3),
    ("k_batch_async", 4, 1),
    ("k_batch_async", 4, 2),
    ("k_batch_async", 3, 7),
    ("sync", 4, None),
    ("async", 4, None),
]


def effective_K(variant: str, P: int, K: int | None) -> int:
    return {"sync": P, "async": 1}.get(variant, K)


def equivalence_tables(P: int, N: int, seed: int) -> list[tuple[str, np.ndarray, type]]:
    """Tables of compute times (P, N) of several kinds, each with the clock arithmetic under which the
    reference reproduces float32 sums exactly."""
    rng = np.random.default_rng(seed)
    dyadic = np.maximum(np.round(rng.exponential(1.0, (2, P, N)) * 64) / 64, 1 / 64)  # exact in float32
    f32 = rng.exponential(1.0, (2, P, N)).astype(np.float32)
    ints = rng.integers(1, 4, (2, P, N)).astype(np.float64)  # values in {1, 2, 3}: many ties
    two = rng.integers(1, 3, (1, P, N)).astype(np.float64)  # values in {1, 2}: even more ties
    return [
        ("exponential/64 #0", dyadic[0], float),
        ("exponential/64 #1", dyadic[1], float),
        ("exponential float32 #0", f32[0], np.float32),
        ("exponential float32 #1", f32[1], np.float32),
        ("constant 1", np.ones((P, N)), float),
        ("constant 0.75", np.full((P, N), 0.75), float),
        ("ints {1,2,3} #0", ints[0], float),
        ("ints {1,2,3} #1", ints[1], float),
        ("ints {1,2}", two[0], float),
    ]


@functools.cache
def equivalence_run(variant, P, K):
    """The JAX timeline over the equivalence tables of (P, effective K), and those tables."""
    Ke = effective_K(variant, P, K)
    N = EQUIV_UPDATES * Ke + 1  # enough jobs for any variant
    tables = equivalence_tables(P, N, seed=1000 * P + Ke)
    stack = np.stack([t for _, t, _ in tables]).astype(np.float32)
    return from_compute_times(variant, P, K, stack, EQUIV_UPDATES), tables, stack


@pytest.mark.parametrize(("variant", "P", "K"), EQUIV_CASES, ids=lambda x: str(x))
def test_matches_reference_event_for_event(variant, P, K):
    Ke = effective_K(variant, P, K)
    J = EQUIV_UPDATES
    tl, tables, stack = equivalence_run(variant, P, K)
    assert tl.time.shape == (len(tables), J)
    assert tl.worker.shape == tl.staleness.shape == (len(tables), J, Ke)
    for r, (kind, _, dtype) in enumerate(tables):
        time, worker, staleness = ref.simulate(variant, stack[r].tolist(), P, Ke, J, dtype=dtype)
        msg = f"{variant} P={P} K={K} table {kind!r}"
        np.testing.assert_array_equal(tl.worker[r], worker, err_msg=msg + ": workers")
        np.testing.assert_array_equal(tl.staleness[r], staleness, err_msg=msg + ": staleness")
        np.testing.assert_allclose(tl.time[r], time, rtol=1e-5, err_msg=msg + ": times")


@pytest.mark.parametrize(("a", "b"), [(("k_async", 4, 4), ("sync", 4, None)), (("k_async", 4, 4), ("k_sync", 4, 4)),
                                      (("k_async", 4, 1), ("k_batch_async", 4, 1)),
                                      (("async", 4, None), ("k_batch_async", 4, 1))],
                         ids=["k_async K=P = sync", "k_async K=P = k_sync K=P", "k_async K=1 = k_batch_async K=1",
                              "async = k_batch_async K=1"])
def test_identities_on_the_same_compute_times(a, b):
    """SPEC §2: sync = k_sync K=P = k_async K=P; async = k_batch_async K=1 = k_async K=1, event for
    event, under the same draw convention (same table)."""
    ta, _, sa = equivalence_run(*a)
    tb, _, sb = equivalence_run(*b)
    np.testing.assert_array_equal(sa, sb)
    for x, y in zip(ta, tb):
        np.testing.assert_array_equal(x, y)


def test_reference_hand_worked_examples():
    """The reference itself on cases small enough to check by hand (constant times: all ties)."""
    ones = [[1.0] * 20 for _ in range(4)]
    # k_async P=4 K=2: workers 0,1 then 2,3 alternate, every other gradient one update old.
    t, w, s = ref.simulate("k_async", ones, 4, 2, 4)
    assert t.tolist() == [1, 1, 2, 2]
    assert w.tolist() == [[0, 1], [2, 3], [0, 1], [2, 3]]
    assert s.tolist() == [[0, 0], [1, 1], [1, 1], [1, 1]]
    # async P=3: round robin, staleness P-1 after the start.
    t, w, s = ref.simulate("async", ones, 3, 1, 6)
    assert t.tolist() == [1, 1, 1, 2, 2, 2]
    assert w[:, 0].tolist() == [0, 1, 2, 0, 1, 2]
    assert s[:, 0].tolist() == [0, 1, 2, 2, 2, 2]
    # k_batch_sync P=2 K=3 with times {1 for worker 0, 3 for worker 1}: worker 0 pushes at 1, 2, 3
    # (ties at 3 go to worker 0), so updates every 3 time units made of worker 0 alone.
    table = [[1.0] * 20, [3.0] * 20]
    t, w, s = ref.simulate("k_batch_sync", table, 2, 3, 3)
    assert t.tolist() == [3, 6, 9]
    assert w.tolist() == [[0, 0, 0]] * 3
    # k_batch_async P=2 K=3, same table: pushes 0@1, 0@2, 0@3 (K-th), 1@3, 0@4, 0@5, ...
    t, w, s = ref.simulate("k_batch_async", table, 2, 3, 2)
    assert t.tolist() == [3, 5]
    assert w.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert s.tolist() == [[0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize(("variant", "P", "K"), [("k_sync", 3, 2), ("k_batch_sync", 3, 4), ("k_async", 4, 2),
                                                 ("k_batch_async", 3, 4)])
def test_compute_times_table_length_is_exact(variant, P, K):
    """A table holding exactly the jobs the run starts is enough; one job less is a ConfigError."""
    J = 25
    rng = np.random.default_rng(7)
    big = np.maximum(np.round(rng.exponential(1.0, (1, P, J * K + 1)) * 64) / 64, 1 / 64).astype(np.float32)
    need = max(ref.draws_used(variant, big[0].tolist(), P, K, J))
    tl = from_compute_times(variant, P, K, big[:, :, :need], J)
    _, worker, staleness = ref.simulate(variant, big[0].tolist(), P, K, J)
    np.testing.assert_array_equal(tl.worker[0], worker)
    np.testing.assert_array_equal(tl.staleness[0], staleness)
    with pytest.raises(ConfigError, match="compute_times"):
        from_compute_times(variant, P, K, big[:, :, : need - 1], J)


def test_from_compute_times_chunking_is_invisible():
    rng = np.random.default_rng(3)
    table = rng.exponential(1.0, (3, 4, 200)).astype(np.float32)
    whole = from_compute_times("k_batch_async", 4, 2, table, 40)
    for chunk in (1, 7):
        part = from_compute_times("k_batch_async", 4, 2, table, 40, chunk=chunk)
        np.testing.assert_array_equal(part.time, whole.time)
        np.testing.assert_array_equal(part.worker, whole.worker)
        np.testing.assert_array_equal(part.staleness, whole.staleness)


# ------------------------------------------------------------------ runtime and staleness theory (SPEC §3)

REPLICAS = 256
UPDATES = 1000
SEED = 20180409
BURN = 200  # updates dropped before measuring the long-run staleness

EXP = Exponential(rate=2.0)  # mean 0.5, cv^2 = 1
SEXP = ShiftedExponential(shift=1.0, rate=2.0)  # mean 1.5, variance 0.25


def harmonic(n: int) -> float:
    return sum(1.0 / i for i in range(1, n + 1))


def exp_order_mean(P: int, K: int, rate: float, shift: float = 0.0) -> float:
    """E[X_{K:P}] of shift + Exponential(rate)."""
    return shift + (harmonic(P) - harmonic(P - K)) / rate


def cv2(law) -> float:
    return float(law.scipy().var()) / law.mean**2


def renewal_bias(law, K: int, J: int, speeds=None, P: int = 1) -> float:
    """Start-up bias of t_J / J for the batch-async variants: all workers start fresh at time 0
    (ordinary, not stationary, renewal processes), so E[N_i(t)] = t/m_i + (cv^2 - 1)/2 + o(1) and
    E[t_J]/J = K/Lambda + P (1 - cv^2) / (2 J Lambda) + o(1/J), Lambda = sum_i 1/m_i."""
    s = np.ones(P) if speeds is None else np.asarray(speeds, np.float64)
    lam = float(np.sum(1.0 / (s * law.mean)))
    return len(s) * (1.0 - cv2(law)) / (2 * J * lam)


@functools.cache
def run(variant, P, K, law, speeds=None, replicas=REPLICAS, updates=UPDATES, seed=SEED):
    sp = list(speeds) if isinstance(speeds, tuple) else speeds
    return timeline(variant, P, K, law, updates=updates, replicas=replicas, seed=seed, speeds=sp)


def per_replica_T(tl) -> np.ndarray:
    return tl.time[:, -1].astype(np.float64) / tl.time.shape[1]


def mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size))


# (id, variant, P, K, law, lower bound, upper bound, start-up bias): E[t_J / J] in [lower, upper] + bias,
# within 4 standard errors and half the bias (the o(1/J) rest of the start-up transient)
RUNTIME_CASES = [
    ("k_sync exp", "k_sync", 8, 4, EXP, exp_order_mean(8, 4, 2.0), exp_order_mean(8, 4, 2.0), 0.0),
    ("sync exp", "sync", 5, None, EXP, exp_order_mean(5, 5, 2.0), exp_order_mean(5, 5, 2.0), 0.0),
    ("k_batch_sync exp K>P", "k_batch_sync", 4, 6, EXP, 6 / (4 * 2.0), 6 / (4 * 2.0), 0.0),
    ("k_async exp", "k_async", 8, 2, EXP, exp_order_mean(8, 2, 2.0), exp_order_mean(8, 2, 2.0), 0.0),
    ("k_batch_async exp", "k_batch_async", 8, 3, EXP, 3 * 0.5 / 8, 3 * 0.5 / 8, 0.0),
    ("async exp", "async", 5, None, EXP, 0.5 / 5, 0.5 / 5, 0.0),
    ("k_sync shifted", "k_sync", 8, 4, SEXP, exp_order_mean(8, 4, 2.0, 1.0), exp_order_mean(8, 4, 2.0, 1.0), 0.0),
    # renewal theory holds in the long run: add the predicted O(1/J) start-up bias
    ("k_batch_async shifted", "k_batch_async", 8, 3, SEXP, 3 * 1.5 / 8, 3 * 1.5 / 8, renewal_bias(SEXP, 3, UPDATES, P=8)),
    # new-longer-than-used: K E[X]/P (throughput bound) <= E[T] <= E[X_{K:P}]
    ("k_async shifted", "k_async", 8, 2, SEXP, 2 * 1.5 / 8, exp_order_mean(8, 2, 2.0, 1.0), 0.0),
    # E[T] <= E[X_{K:P}] and every gradient takes at least the shift
    ("k_batch_sync shifted", "k_batch_sync", 4, 3, SEXP, 1.0, exp_order_mean(4, 3, 2.0, 1.0), 0.0),
]


@pytest.mark.parametrize(("variant", "P", "K", "law", "low", "high", "bias"), [c[1:] for c in RUNTIME_CASES],
                         ids=[c[0] for c in RUNTIME_CASES])
def test_time_per_update_matches_theory(variant, P, K, law, low, high, bias):
    tl = run(variant, P, K, law)
    x = per_replica_T(tl)
    m, se = mean_se(x)
    tol = 4 * se + abs(bias) / 2
    assert low + bias - tol <= m <= high + bias + tol, (m, se, low, high, bias)
    assert tl.time_per_update == pytest.approx(m, rel=1e-5)
    if low == high:  # the SE is a sensible yardstick: small next to the quantity itself
        assert se < 0.01 * low


def test_async_beats_sync_as_theory_says():
    """Sync vs async speed-up E[X_{P:P}] / (E[X]/P): exponential P H_P (SPEC §3)."""
    sync, asy = run("sync", 5, None, EXP), run("async", 5, None, EXP)
    ratio = sync.time_per_update / asy.time_per_update
    assert ratio == pytest.approx(5 * harmonic(5), rel=0.03)


# (id, variant, P, K, law, long-run mean staleness)
STALENESS_CASES = [
    ("async exp", "async", 5, None, EXP, 4.0),
    ("k_async exp", "k_async", 8, 2, EXP, 3.0),
    ("k_batch_async exp", "k_batch_async", 8, 3, EXP, 7 / 3),
    ("k_async shifted", "k_async", 8, 2, SEXP, 3.0),
    ("k_batch_async shifted", "k_batch_async", 8, 3, SEXP, 7 / 3),
]


@pytest.mark.parametrize(("variant", "P", "K", "law", "theory"), [c[1:] for c in STALENESS_CASES],
                         ids=[c[0] for c in STALENESS_CASES])
def test_long_run_staleness_matches_theory(variant, P, K, law, theory):
    tl = run(variant, P, K, law)
    per_replica = tl.staleness[:, BURN:].reshape(tl.staleness.shape[0], -1).mean(axis=1)
    m, se = mean_se(per_replica.astype(np.float64))
    assert abs(m - theory) < 4 * se + 1e-3 * theory, (m, se, theory)
    assert tl.staleness.min() >= 0
    # staleness at update j is at most j (nothing older than w_0)
    j = np.arange(tl.staleness.shape[1])[None, :, None]
    assert np.all(tl.staleness <= j)


@pytest.mark.parametrize(("variant", "P", "K", "law"), [("k_sync", 8, 4, EXP), ("sync", 5, None, EXP),
                                                       ("k_batch_sync", 4, 6, EXP), ("k_batch_sync", 4, 3, SEXP)])
def test_sync_variants_are_fresh(variant, P, K, law):
    tl = run(variant, P, K, law)
    assert np.all(tl.staleness == 0)
    assert tl.staleness_mean == 0.0 and tl.fresh_fraction == 1.0


@pytest.mark.parametrize("case", RUNTIME_CASES, ids=[c[0] for c in RUNTIME_CASES])
def test_clocks_never_decrease(case):
    _, variant, P, K, law, *_ = case
    tl = run(variant, P, K, law)
    assert np.all(tl.time[:, 0] > 0)
    assert np.all(np.diff(tl.time, axis=1) >= 0)
    Ke = effective_K(variant, P, K)
    assert tl.worker.min() >= 0 and tl.worker.max() < P
    counts = np.stack([np.bincount(w.ravel(), minlength=P) for w in tl.worker])
    assert np.all(counts.sum(axis=1) == UPDATES * Ke)


def test_k_sync_workers_are_the_fastest_distinct():
    tl = run("k_sync", 8, 4, EXP)
    srt = np.sort(tl.worker, axis=-1)
    assert np.all(np.diff(srt, axis=-1) > 0)


# ------------------------------------------------------------------ heterogeneous speeds

SPEEDS_VECTOR = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 8.0)


@pytest.mark.parametrize("speeds", ["sqrt", SPEEDS_VECTOR], ids=["sqrt", "vector"])
def test_heterogeneous_k_batch_async_renewal_rate(speeds):
    """E[T] = K / sum_i 1/(s_i E[X]); exponential: exact from the start (superposed Poisson processes)."""
    P, K = 8, 3
    s = np.sqrt(np.arange(1, P + 1)) if speeds == "sqrt" else np.asarray(speeds)
    theory = K / np.sum(1.0 / (s * EXP.mean))
    tl = run("k_batch_async", P, K, EXP, speeds=speeds)
    m, se = mean_se(per_replica_T(tl))
    assert abs(m - theory) < 4 * se, (m, se, theory)
    # a slow worker contributes proportionally fewer gradients: share_i = (1/s_i) / sum_k 1/s_k
    share = np.bincount(tl.worker.ravel(), minlength=P) / tl.worker.size
    np.testing.assert_allclose(share, (1 / s) / np.sum(1 / s), atol=0.01)


def test_heterogeneous_shifted_renewal_rate():
    P, K, speeds = 8, 3, "two_tier"
    s = np.where(np.arange(1, P + 1) > P // 2, 4.0, 1.0)
    theory = K / np.sum(1.0 / (s * SEXP.mean))
    bias = renewal_bias(SEXP, K, UPDATES, speeds=s)
    m, se = mean_se(per_replica_T(run("k_batch_async", P, K, SEXP, speeds=speeds)))
    assert abs(m - theory - bias) < 4 * se + abs(bias) / 2, (m, se, theory, bias)


def test_speeds_scale_each_workers_compute_time():
    """Worker i's job takes s_i * X: with a constant law k_sync K=2 over speeds (3, 1, 2) always takes
    workers 1 then 2, the update after 2 * 1.5 time units."""
    tl = timeline("k_sync", 3, 2, Constant(1.5), updates=5, replicas=2, speeds=[3.0, 1.0, 2.0])
    np.testing.assert_allclose(tl.time, np.tile(3.0 * np.arange(1, 6), (2, 1)))
    assert np.all(tl.worker == np.array([1, 2]))


# ------------------------------------------------------------------ identities and invariances
# Small runs share one shape (SMALL) so they share compilations.

SMALL = {"updates": 50, "replicas": 8}


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_speed_patterns_equal_explicit_vectors():
    a = timeline("k_async", 4, 2, EXP, seed=5, speeds="sqrt", **SMALL)
    assert_same(a, timeline("k_async", 4, 2, EXP, seed=5, speeds=np.sqrt([1, 2, 3, 4]), **SMALL))
    b = timeline("k_async", 4, 2, EXP, seed=5, **SMALL)
    assert not np.array_equal(a.time, b.time)


def test_aliases_resolve_to_their_canonical_settings():
    s = resolve("sync", 4)
    assert (s.variant, s.P, s.K) == ("k_sync", 4, 4) and s == resolve("sync", 4, 4)
    a = resolve("async", 4)
    assert (a.variant, a.P, a.K) == ("k_batch_async", 4, 1) and a == resolve("async", 4, 1)


def test_k_async_and_k_batch_async_with_K_1_are_one_random_process():
    """Same seed, same arrays: both draw worker i's n-th job from the same key."""
    a = timeline("k_batch_async", 4, 1, EXP, seed=12, **SMALL)
    assert_same(a, timeline("k_async", 4, 1, EXP, seed=12, **SMALL))
    assert a.staleness.max() > 0


def test_k_async_with_K_equal_P_is_sync_same_seed():
    a = timeline("k_async", 4, 4, EXP, seed=11, **SMALL)
    assert_same(a, timeline("sync", 4, None, EXP, seed=11, **SMALL))


def test_replicas_do_not_depend_on_how_many_are_drawn():
    few = timeline("k_async", 4, 2, EXP, seed=3, **SMALL)
    many = timeline("k_async", 4, 2, EXP, seed=3, updates=SMALL["updates"], replicas=1000)
    n = SMALL["replicas"]
    np.testing.assert_array_equal(few.time, many.time[:n])
    np.testing.assert_array_equal(few.worker, many.worker[:n])
    np.testing.assert_array_equal(few.staleness, many.staleness[:n])


def test_chunk_size_is_invisible_and_seeds_determine_runs():
    whole = timeline("k_async", 4, 2, EXP, seed=4, **SMALL)
    # chunk 64 repeats the unchunked run (determinism); chunk 25 runs it in two pieces
    for chunk in (25, 64):
        assert_same(timeline("k_async", 4, 2, EXP, seed=4, chunk=chunk, **SMALL), whole)
    other = timeline("k_async", 4, 2, EXP, seed=5, **SMALL)
    assert not np.array_equal(other.time, whole.time)
    assert len(np.unique(whole.time[:, -1])) == SMALL["replicas"]  # replicas are different runs


@pytest.mark.parametrize("case", RUNTIME_CASES[:6], ids=[c[0] for c in RUNTIME_CASES[:6]])
def test_timeline_shapes_and_dtypes(case):
    _, variant, P, K, law, *_ = case
    tl = run(variant, P, K, law)
    Ke = effective_K(variant, P, K)
    assert tl.time.shape == (REPLICAS, UPDATES)
    assert tl.worker.shape == tl.staleness.shape == (REPLICAS, UPDATES, Ke)
    assert tl.worker.dtype == np.int32 and tl.staleness.dtype == np.int32


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("k_sync", 4, 0), "K"),
        (("k_sync", 4, 5), "K"),
        (("k_async", 4, 5), "K"),
        (("k_async", 4, 0), "K"),
        (("k_batch_sync", 4, 0), "K"),
        (("k_batch_async", 4, -1), "K"),
        (("k_sync", 4, None), "K"),
        (("k_sync", 4, 2.5), "K"),
        (("k_sync", 0, 1), "P"),
        (("k_batch_async", -2, 1), "P"),
        (("k_batch_async", True, 1), "P"),
        (("sync", 4, 3), "K"),
        (("async", 4, 2), "K"),
    ],
)
def test_bad_variant_P_K(args, field):
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        timeline(*args, delay=EXP, updates=3)


def test_unknown_variant_suggests_the_closest():
    with pytest.raises(ConfigError, match="variant") as e:
        timeline("k_asyn", 4, 2, EXP, updates=3)
    assert "'k_async'" in str(e.value)
    with pytest.raises(ConfigError, match="k_batch_sync"):
        timeline("kbatch_sync", 4, 2, EXP, updates=3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"updates": 0}, "updates"),
        ({"updates": -5}, "updates"),
        ({"replicas": 0}, "replicas"),
        ({"chunk": 0}, "chunk"),
        ({"delay": None}, "delay"),
        ({"delay": "exponential"}, "delay"),
        ({"delay": 1.0}, "delay"),
        ({"speeds": [1.0, 2.0]}, "speeds"),
        ({"speeds": "cubic"}, "speeds"),
    ],
)
def test_bad_run_options(kwargs, field):
    opts = {"delay": EXP, "updates": 3, **kwargs}
    with pytest.raises(ConfigError, match=field):
        timeline("k_sync", 4, 2, **opts)


def test_bad_compute_times_shape():
    with pytest.raises(ConfigError, match="compute_times"):
        from_compute_times("k_sync", 4, 2, np.ones((2, 3, 10)), 3)  # 3 workers, P=4
    with pytest.raises(ConfigError, match="compute_times"):
        from_compute_times("k_sync", 4, 2, np.ones((4, 10)), 3)  # no replica axis
    with pytest.raises(ConfigError, match="compute_times"):
        from_compute_times("k_sync", 3, 2, np.ones((1, 3, 4)), 5)  # too short


@pytest.mark.parametrize(("kwargs", "field"), [({"updates": 0}, "updates"), ({"updates": -1}, "updates"),
                                               ({"updates": 5, "chunk": -1}, "chunk")])
def test_from_compute_times_bad_updates_or_chunk(kwargs, field):
    kwargs = {"updates": 5, **kwargs}
    with pytest.raises(ConfigError, match=field):
        from_compute_times("k_sync", 3, 2, np.ones((2, 3, 50), np.float32), **kwargs)


@pytest.mark.parametrize("bad", ["negative", "nan", "inf", "no-replicas"])
def test_from_compute_times_rejects_invalid_tables(bad):
    table = np.ones((1, 2, 10), np.float32)
    if bad == "negative":
        table[0, 0, 0] = -5.0
    elif bad == "nan":
        table[0, 1, 1] = np.nan
    elif bad == "inf":
        table[0, 1, 0] = np.inf
    else:
        table = np.ones((0, 2, 10), np.float32)
    with pytest.raises(ConfigError, match="compute_times"):
        from_compute_times("k_batch_async", 2, 1, table, 4)
