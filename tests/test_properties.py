"""Property tests (hypothesis) of the timeline: invariants that hold for every variant, P, K, delay law
and seed, and agreement with the independent event simulation on random compute-time tables.

Shapes are tiny and few: P and K are static (each new combination compiles), so the examples are kept
to a small number per test."""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxsgd.delays import (
    Constant,
    Exponential,
    Hyperexponential,
    LogNormal,
    Pareto,
    ShiftedExponential,
    Uniform,
)
from jaxsgd.timeline import from_compute_times, timeline

try:  # tests/ may or may not be a package
    from . import reference_sim as ref
except ImportError:
    import reference_sim as ref

VARIANTS = ("k_sync", "k_batch_sync", "k_async", "k_batch_async", "sync", "async")
CANONICAL = {"sync": "k_sync", "async": "k_batch_async"}
MAX_P = 6
UPDATES = 12
REPLICAS = 2
JOBS = UPDATES * 2 * MAX_P + 1  # enough for any variant with K <= 2P

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def variant_P_K(draw, max_P: int = MAX_P):
    """(variant, P, K as passed, effective K): K in 1..P, or 1..2P for the batch variants."""
    variant = draw(st.sampled_from(VARIANTS))
    P = draw(st.integers(1, max_P))
    if variant == "sync":
        return variant, P, None, P
    if variant == "async":
        return variant, P, None, 1
    K = draw(st.integers(1, P if variant in ("k_sync", "k_async") else 2 * P))
    return variant, P, K, K


def pos(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


LAWS = st.one_of(
    st.builds(Exponential, rate=pos(0.1, 10.0)),
    st.builds(ShiftedExponential, shift=pos(0.0, 2.0), rate=pos(0.1, 10.0)),
    st.builds(Pareto, scale=pos(0.1, 2.0), shape=pos(1.1, 5.0)),
    st.builds(LogNormal, mu=pos(-1.0, 1.0), sigma=pos(0.1, 1.5)),
    st.builds(lambda lo, w: Uniform(low=lo, high=lo + w), pos(0.0, 2.0), pos(0.01, 2.0)),
    st.builds(Constant, value=pos(0.1, 3.0)),
    st.builds(lambda p, r1, r2: Hyperexponential(probs=(p, 1.0 - p), rates=(r1, r2)),
              pos(0.05, 0.95), pos(0.1, 10.0), pos(0.05, 2.0)),
)


def check_invariants(tl, variant: str, P: int, K: int, updates: int) -> None:
    """Invariants of SPEC §2 and §8 that any timeline of `variant` must satisfy."""
    canon = CANONICAL.get(variant, variant)
    R = tl.time.shape[0]
    assert tl.time.shape == (R, updates)
    assert tl.worker.shape == tl.staleness.shape == (R, updates, K)
    assert np.all(np.isfinite(tl.time)) and np.all(tl.time >= 0)
    assert np.all(np.diff(tl.time, axis=1) >= 0), "clock went backwards"
    assert tl.worker.min() >= 0 and tl.worker.max() < P
    # gradients per worker add up to updates * K
    counts = np.stack([np.bincount(w.ravel(), minlength=P) for w in tl.worker])
    assert counts.shape == (R, P) and np.all(counts.sum(axis=1) == updates * K)
    # staleness: 0 <= staleness[j] <= j (nothing older than w_0)
    assert tl.staleness.min() >= 0
    assert np.all(tl.staleness <= np.arange(updates)[None, :, None])
    if canon in ("k_sync", "k_batch_sync"):
        assert np.all(tl.staleness == 0), "sync variants are always fresh"
    if canon in ("k_sync", "k_async"):  # K distinct workers per update
        srt = np.sort(tl.worker, axis=-1)
        assert np.all(np.diff(srt, axis=-1) > 0), "a worker pushed twice in one update"
    if canon in ("k_async", "k_batch_async"):
        # The staleness follows from the arrival order alone: a pusher next works on w_{j+1} (k_async, or
        # the K-th push of k_batch_async) or on w_j (an earlier push of k_batch_async).
        for r in range(R):
            version = np.zeros(P, np.int64)
            for j in range(updates):
                for l, i in enumerate(tl.worker[r, j]):
                    assert tl.staleness[r, j, l] == j - version[i], (r, j, l)
                    version[i] = j + 1 if (canon == "k_async" or l == K - 1) else j


def check_clock_against_table(tl, variant: str, P: int, K: int, table: np.ndarray, updates: int) -> None:
    """Invariants that tie the clock and each worker's gradient count to the compute-time table
    (table[r, i, n]: worker i's n-th job), from SPEC §2 alone, in the clock's float32 arithmetic.

    k_sync restarts every worker at each update: update j applies the K jobs table[:, :, j] that finish
    first (finish = t_j + x; ties: lower index), t_{j+1} is the K-th finish, and each worker pushes at most
    once per update. k_batch_async never idles or cancels a worker: its n-th gradient arrives at the sum of
    its first n compute times, so the gradients of update j arrive in [t_{j-1}, t_j], the K-th exactly at
    t_j, and worker i's number of gradients by t_J lies between its number of epochs before t_J and up to
    t_J."""
    canon = CANONICAL.get(variant, variant)
    f32 = np.float32
    if canon == "k_sync":
        prev = np.concatenate([np.zeros((tl.time.shape[0], 1), f32), tl.time[:, :-1].astype(f32)], axis=1)
        finish = prev[:, None, :] + table[:, :, :updates].astype(f32)  # (R, P, updates), float32 sums
        order = np.argsort(finish, axis=1, kind="stable")[:, :K]  # (R, K, updates)
        np.testing.assert_array_equal(tl.time, np.take_along_axis(finish, order[:, -1:], axis=1)[:, 0])
        np.testing.assert_array_equal(tl.worker, np.moveaxis(order, 1, 2))
    if canon == "k_batch_async":
        epochs = np.cumsum(table.astype(f32), axis=2, dtype=f32)  # float32, one addition at a time
        for r in range(tl.time.shape[0]):
            pushed = np.zeros(P, np.int64)
            previous = f32(0)
            for j in range(updates):
                for l, i in enumerate(tl.worker[r, j]):
                    arrival = epochs[r, i, pushed[i]]
                    pushed[i] += 1
                    assert previous <= arrival <= tl.time[r, j], (r, j, l)
                    if l == K - 1:
                        assert arrival == tl.time[r, j], (r, j, l)
                previous = tl.time[r, j]
            end = tl.time[r, -1]
            before, upto = np.sum(epochs[r] < end, axis=1), np.sum(epochs[r] <= end, axis=1)
            assert np.all(before <= pushed) and np.all(pushed <= upto), (before, pushed, upto)


@SETTINGS
@given(vpk=variant_P_K(), law=LAWS, seed=st.integers(0, 2**31 - 1))
def test_random_tables_agree_with_reference(vpk, law, seed):
    """Compute times drawn from a random law: the invariants hold (with the clock and the gradient counts
    tied to the table), and the JAX timeline is the independent event simulation's, event for event
    (float32 clock arithmetic on both sides)."""
    variant, P, K, Ke = vpk
    full = np.asarray(law.sample(jax.random.key(seed), (REPLICAS, MAX_P, JOBS)), np.float32)
    table = full[:, :P, : UPDATES * Ke + 1]
    tl = from_compute_times(variant, P, K, table, UPDATES)
    check_invariants(tl, variant, P, Ke, UPDATES)
    check_clock_against_table(tl, variant, P, Ke, table, UPDATES)
    for r in range(REPLICAS):
        time, worker, staleness = ref.simulate(variant, table[r].tolist(), P, Ke, UPDATES, dtype=np.float32)
        np.testing.assert_array_equal(tl.worker[r], worker)
        np.testing.assert_array_equal(tl.staleness[r], staleness)
        np.testing.assert_allclose(tl.time[r], time, rtol=1e-5)


@st.composite
def runs(draw):
    variant, P, K, Ke = draw(variant_P_K(max_P=3))
    law = draw(st.sampled_from([Exponential(rate=1.0), Pareto(scale=1.0, shape=2.5)]))
    speeds = draw(st.none() | st.lists(pos(0.25, 4.0), min_size=P, max_size=P))
    seed = draw(st.integers(0, 2**31 - 1))
    return variant, P, K, Ke, law, speeds, seed


@SETTINGS
@given(run=runs())
def test_random_timelines_satisfy_invariants(run):
    """timeline() itself (random draws, optional random per-worker speeds)."""
    variant, P, K, Ke, law, speeds, seed = run
    tl = timeline(variant, P, K, law, updates=UPDATES, replicas=REPLICAS, seed=seed, speeds=speeds)
    check_invariants(tl, variant, P, Ke, UPDATES)
    assert np.all(tl.time > 0)
    assert tl.time_per_update == np.mean(tl.time[:, -1]) / UPDATES
