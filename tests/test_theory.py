"""Tests of jaxsgd.theory: order statistics against closed forms and Monte Carlo, runtime, staleness, bounds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special

from jaxsgd import delays as D
from jaxsgd import theory as T
from jaxsgd.errors import ConfigError

H = T.harmonic
PK = [(1, 1), (2, 1), (2, 2), (5, 1), (5, 3), (5, 5), (16, 1), (16, 8), (16, 15), (16, 16), (100, 1), (100, 50),
      (100, 100)]


def rel(a, b):
    return abs(a - b) / abs(b)


def pareto_os_mean(scale, shape, P, K):
    """E[X_{K:P}] of Pareto(scale, shape): X_{K:P} = scale * U_{(r)}^{-1/shape}, r = P-K+1."""
    r = P - K + 1
    a = 1.0 / shape
    return scale * math.exp(special.gammaln(P + 1) + special.gammaln(r - a) - special.gammaln(r)
                            - special.gammaln(P + 1 - a))


# ------------------------------------------------------------------------------------------------
# harmonic numbers


def test_harmonic():
    assert T.harmonic(0) == 0.0
    assert T.harmonic(1) == 1.0
    assert T.harmonic(4) == pytest.approx(25 / 12, rel=1e-15)
    big = 10**6  # digamma branch
    assert T.harmonic(big) == pytest.approx(math.log(big) + np.euler_gamma + 1 / (2 * big), rel=1e-12)
    with pytest.raises(ConfigError, match="n"):
        T.harmonic(-1)


# ------------------------------------------------------------------------------------------------
# order statistics: closed forms


@pytest.mark.parametrize("P,K", PK)
@pytest.mark.parametrize("rate", [0.05, 1.0, 40.0])
def test_exponential_order_statistic(P, K, rate):
    expected = (H(P) - H(P - K)) / rate
    assert rel(T.order_statistic_mean(D.Exponential(rate), P, K), expected) < 1e-7


@pytest.mark.parametrize("P,K", PK)
@pytest.mark.parametrize("shift,rate", [(0.5, 1.0), (2.0, 0.3), (1e-3, 100.0)])
def test_shifted_exponential_order_statistic(P, K, shift, rate):
    expected = shift + (H(P) - H(P - K)) / rate
    assert rel(T.order_statistic_mean(D.ShiftedExponential(shift, rate), P, K), expected) < 1e-7


@pytest.mark.parametrize("P,K", PK)
def test_uniform_order_statistic(P, K):
    low, high = 0.5, 2.0
    expected = low + (high - low) * K / (P + 1)
    assert rel(T.order_statistic_mean(D.Uniform(low, high), P, K), expected) < 1e-8


@pytest.mark.parametrize("P,K", PK)
def test_constant_order_statistic(P, K):
    assert T.order_statistic_mean(D.Constant(1.7), P, K) == pytest.approx(1.7, rel=1e-14)


@pytest.mark.parametrize("P,K", [(1, 1), (3, 1), (3, 3), (10, 4), (10, 10)])
@pytest.mark.parametrize("shape", [0.6, 1.5, 3.0])
def test_pareto_order_statistic(P, K, shape):
    law = D.Pareto(2.0, shape)
    got = T.order_statistic_mean(law, P, K)
    if shape * (P - K + 1) <= 1:
        assert got == math.inf  # diverges, although E[X_{K:P}] can be finite for K < P
    else:
        assert rel(got, pareto_os_mean(2.0, shape, P, K)) < 1e-7


def test_pareto_infinite_mean_but_finite_minimum():
    # E[X] = inf for shape 0.8, but the minimum of 3 is Pareto(shape 2.4)
    law = D.Pareto(1.0, 0.8)
    assert T.order_statistic_mean(law, 1, 1) == math.inf
    assert T.order_statistic_mean(law, 3, 1) == pytest.approx(2.4 / 1.4, rel=1e-7)


@pytest.mark.parametrize(
    "law",
    [D.Exponential(1.3), D.Gamma(1.0, 0.5), D.Weibull(2.0, 1.0), D.ShiftedExponential(0.0, 3.0),
     D.Hyperexponential((0.3, 0.7), (2.0, 2.0))],
)
def test_exponential_in_disguise(law):
    rate = 1.0 / law.mean
    assert rel(T.order_statistic_mean(law, 7, 3), (H(7) - H(4)) / rate) < 1e-7
    assert T.aging_class(law) == "memoryless"


@pytest.mark.parametrize("law", [D.Gamma(2.5, 0.4), D.Weibull(1.0, 0.6), D.LogNormal(0.1, 0.8),
                                 D.Hyperexponential()])
def test_k1_p1_is_the_mean(law):
    assert rel(T.order_statistic_mean(law, 1, 1), law.mean) < 1e-8


def test_gamma_shape2_closed_form():
    # minimum of 2 Gamma(2, 1): P(X > x) = (1+x)e^{-x}, so E[min] = int (1+x)^2 e^{-2x} dx = 5/4
    assert rel(T.order_statistic_mean(D.Gamma(2.0, 1.0), 2, 1), 1.25) < 1e-9


# ------------------------------------------------------------------------------------------------
# heterogeneous workers


@pytest.mark.parametrize("law", [D.Exponential(1.0), D.ShiftedExponential(1.0, 2.0), D.Uniform(0.5, 1.5),
                                 D.Pareto(1.0, 2.5), D.Hyperexponential(), D.Constant(2.0)])
@pytest.mark.parametrize("P,K", [(1, 1), (4, 1), (4, 3), (6, 6)])
def test_equal_speeds_scale_the_homogeneous_result(law, P, K):
    s = 2.5
    hom = T.order_statistic_mean(law, P, K)
    het = T.order_statistic_mean(law, P, K, speeds=[s] * P)
    assert rel(het, s * hom) < 1e-9
    assert T.order_statistic_mean(law, P, K, speeds=[1.0] * P) == pytest.approx(hom, rel=1e-12)
    assert T.order_statistic_mean(law, P, K, speeds="homogeneous") == hom


@pytest.mark.parametrize("mu1,mu2", [(1.0, 1.0), (2.0, 0.5), (10.0, 0.1)])
def test_two_exponential_workers(mu1, mu2):
    # worker i draws s_i * Exponential(rate) = Exponential(rate / s_i)
    rate = 1.0
    speeds = [rate / mu1, rate / mu2]
    law = D.Exponential(rate)
    e_min = 1.0 / (mu1 + mu2)
    e_max = 1.0 / mu1 + 1.0 / mu2 - 1.0 / (mu1 + mu2)
    assert rel(T.order_statistic_mean(law, 2, 1, speeds), e_min) < 1e-9
    assert rel(T.order_statistic_mean(law, 2, 2, speeds), e_max) < 1e-9


def test_heterogeneous_exponential_minimum():
    # the minimum of independent exponentials is exponential with the summed rates
    s = D.speeds("sqrt", 9)
    assert rel(T.order_statistic_mean(D.Exponential(2.0), 9, 1, "sqrt"), 1.0 / np.sum(2.0 / s)) < 1e-9


def test_heterogeneous_uniform_separated_tiers():
    # two_tier: 4 workers U(0.5,1.5), 4 workers 4*U(0.5,1.5) = U(2,6); the tiers never overlap
    law = D.Uniform(0.5, 1.5)
    assert rel(T.order_statistic_mean(law, 8, 3, "two_tier"), 0.5 + 3 / 5) < 1e-9
    assert rel(T.order_statistic_mean(law, 8, 8, "two_tier"), 2.0 + 4.0 * 4 / 5) < 1e-9


@pytest.mark.parametrize(
    "law,draw",
    [
        (D.LogNormal(0.2, 0.9), lambda rng, n: rng.lognormal(0.2, 0.9, n)),
        (D.Hyperexponential((0.9, 0.1), (2.0, 0.2)),
         lambda rng, n: np.where(rng.random(n) < 0.9, rng.exponential(0.5, n), rng.exponential(5.0, n))),
        (D.ShiftedExponential(0.5, 2.0), lambda rng, n: 0.5 + rng.exponential(0.5, n)),
        (D.Gamma(0.5, 2.0), lambda rng, n: rng.gamma(0.5, 2.0, n)),
    ],
)
@pytest.mark.parametrize("K", [1, 3, 5])
def test_heterogeneous_monte_carlo(law, draw, K):
    rng = np.random.default_rng(12345)
    speeds = np.array([0.5, 1.0, 1.0, 2.0, 3.0])
    n = 100_000
    x = np.sort(draw(rng, n * 5).reshape(n, 5) * speeds, axis=1)[:, K - 1]
    se = x.std(ddof=1) / math.sqrt(n)
    assert abs(T.order_statistic_mean(law, 5, K, speeds) - x.mean()) < 4 * se


def test_constant_heterogeneous_is_sorted_speeds():
    speeds = [3.0, 1.0, 2.0, 5.0]
    for K in range(1, 5):
        assert T.order_statistic_mean(D.Constant(2.0), 4, K, speeds) == pytest.approx(2.0 * sorted(speeds)[K - 1])


def _trace(tmp_path, values):
    path = tmp_path / "trace.npy"
    np.save(path, np.asarray(values, dtype=np.float64))
    return D.Trace(str(path))


@pytest.mark.parametrize("speeds", [None, [1.0, 1.5, 0.7]])
def test_trace_exact_by_enumeration(tmp_path, speeds):
    values = [1.0, 2.0, 2.0, 4.0, 0.3]
    law = _trace(tmp_path, values)
    s = np.ones(3) if speeds is None else np.asarray(speeds)
    draws = np.array(list(itertools.product(values, repeat=3))) * s  # all equally likely
    ordered = np.sort(draws, axis=1)
    for K in (1, 2, 3):
        assert T.order_statistic_mean(law, 3, K, speeds) == pytest.approx(ordered[:, K - 1].mean(), rel=1e-12)


def test_order_statistic_bad_inputs():
    law = D.Exponential(1.0)
    with pytest.raises(ConfigError, match="K"):
        T.order_statistic_mean(law, 3, 4)
    with pytest.raises(ConfigError, match="K"):
        T.order_statistic_mean(law, 3, 0)
    with pytest.raises(ConfigError, match="P"):
        T.order_statistic_mean(law, 0, 1)
    with pytest.raises(ConfigError, match="speeds"):
        T.order_statistic_mean(law, 3, 1, speeds=[1.0, 2.0])
    with pytest.raises(ConfigError, match="speeds"):
        T.order_statistic_mean(law, 2, 1, speeds=[1.0, -2.0])
    with pytest.raises(ConfigError, match="delay"):
        T.order_statistic_mean("exponential", 3, 1)


# ------------------------------------------------------------------------------------------------
# time per update, speed-up, staleness


def test_time_per_update_exponential():
    law = D.Exponential(2.0)
    P = 8
    assert T.time_per_update("sync", P, delay=law) == pytest.approx(H(P) / 2.0)
    assert T.time_per_update("k_sync", P, 3, delay=law) == pytest.approx((H(8) - H(5)) / 2.0)
    assert T.time_per_update("k_async", P, 3, delay=law) == pytest.approx((H(8) - H(5)) / 2.0)
    assert T.time_per_update("k_batch_sync", P, 3, delay=law) == pytest.approx(3 / (8 * 2.0))
    assert T.time_per_update("k_batch_sync", P, 20, delay=law) == pytest.approx(20 / (8 * 2.0))
    assert T.time_per_update("k_batch_async", P, 3, delay=law) == pytest.approx(3 * 0.5 / 8)
    assert T.time_per_update("async", P, delay=law) == pytest.approx(0.5 / 8)


def test_time_per_update_other_laws():
    law = D.ShiftedExponential(1.0, 2.0)
    assert T.time_per_update("k_sync", 6, 2, delay=law) == pytest.approx(1.0 + (H(6) - H(4)) / 2.0, rel=1e-9)
    assert T.time_per_update("k_batch_async", 6, 2, delay=law) == pytest.approx(2 * 1.5 / 6)
    assert T.time_per_update("k_async", 6, 2, delay=law) is None
    assert T.time_per_update("k_batch_sync", 6, 2, delay=law) is None
    assert T.time_per_update("async", 4, delay=D.Pareto(1.0, 0.9)) == math.inf
    assert T.time_per_update("k_sync", 4, 1, delay=D.Pareto(1.0, 0.9)) == pytest.approx(3.6 / 2.6, rel=1e-7)


def test_time_per_update_heterogeneous():
    law = D.Exponential(1.0)
    s = np.array([1.0, 2.0, 4.0])
    # k_batch_async: K / sum_i 1/E[s_i X]
    assert T.time_per_update("k_batch_async", 3, 2, delay=D.Uniform(0.5, 1.5), speeds=s) == pytest.approx(
        2 / np.sum(1 / s)
    )
    # memoryless laws: batch-sync is a merged Poisson process, k_async an order statistic
    assert T.time_per_update("k_batch_sync", 3, 5, delay=law, speeds=s) == pytest.approx(5 / np.sum(1 / s))
    assert T.time_per_update("k_async", 3, 2, delay=law, speeds=s) == pytest.approx(
        T.order_statistic_mean(law, 3, 2, s)
    )
    assert T.time_per_update("sync", 3, delay=D.Constant(1.0), speeds=s) == pytest.approx(4.0)


def test_time_per_update_bad_inputs():
    law = D.Exponential(1.0)
    with pytest.raises(ConfigError, match="variant"):
        T.time_per_update("ksync", 4, 2, delay=law)
    with pytest.raises(ConfigError, match="K"):
        T.time_per_update("k_sync", 4, 5, delay=law)
    with pytest.raises(ConfigError, match="K"):
        T.time_per_update("sync", 4, 2, delay=law)
    with pytest.raises(ConfigError, match="K"):
        T.time_per_update("k_async", 4, delay=law)
    with pytest.raises(ConfigError, match="delay"):
        T.time_per_update("k_sync", 4, 2)


@pytest.mark.parametrize(
    "law,cls",
    [
        (D.Exponential(1.0), "memoryless"),
        (D.ShiftedExponential(0.5, 1.0), "NLU"),
        (D.Constant(1.0), "NLU"),
        (D.Uniform(0.5, 1.5), "NLU"),
        (D.Weibull(1.0, 2.0), "NLU"),
        (D.Gamma(3.0, 1.0), "NLU"),
        (D.Hyperexponential(), "NSU"),
        (D.Pareto(1.0, 2.5), "NSU"),
        (D.Weibull(1.0, 0.5), "NSU"),
        (D.Gamma(0.5, 1.0), "NSU"),
        (D.LogNormal(0.0, 1.0), None),
    ],
)
def test_bounds_classification(law, cls):
    assert T.aging_class(law) == cls
    bound = T.time_per_update_bound("k_async", 6, 2, law)
    if cls is None:
        assert bound is None
        return
    kind, value = bound
    assert kind == {"NLU": "upper", "memoryless": "upper", "NSU": "lower"}[cls]
    assert value == pytest.approx(T.order_statistic_mean(law, 6, 2))


def test_bounds_by_variant():
    law = D.LogNormal(0.0, 1.0)
    kind, value = T.time_per_update_bound("k_batch_sync", 6, 2, law)
    assert kind == "upper" and value == pytest.approx(T.order_statistic_mean(law, 6, 2))
    kind, value = T.time_per_update_bound("k_batch_sync", 4, 9, law)
    assert kind == "upper" and value == pytest.approx(3 * T.order_statistic_mean(law, 4, 4))
    assert T.time_per_update_bound("k_sync", 6, 2, law) is None
    assert T.time_per_update_bound("k_batch_async", 6, 2, law) is None
    assert T.time_per_update_bound("async", 6, None, law) is None
    # the k_batch_sync upper bound holds for the exact exponential value
    exact = T.time_per_update("k_batch_sync", 6, 2, delay=D.Exponential(1.0))
    assert exact <= T.time_per_update_bound("k_batch_sync", 6, 2, D.Exponential(1.0))[1]


@pytest.mark.parametrize("P", [1, 2, 10, 64])
def test_speedup_exponential(P):
    assert T.speedup_async_over_sync(P, D.Exponential(3.0)) == pytest.approx(P * H(P), rel=1e-12)
    # the integral gives the same for a Gamma(1) law (not special-cased numerically)
    assert T.speedup_async_over_sync(P, D.Gamma(1.0 + 1e-12, 1.0)) == pytest.approx(P * H(P), rel=1e-7)


def test_speedup_other_laws():
    assert T.speedup_async_over_sync(5, D.Constant(2.0)) == pytest.approx(5.0)
    assert T.speedup_async_over_sync(4, D.Uniform(0.0, 2.0)) == pytest.approx(4 * 1.6 / 1.0)
    with pytest.raises(ConfigError, match="infinite mean"):
        T.speedup_async_over_sync(4, D.Pareto(1.0, 1.0))


def test_staleness_mean():
    assert T.staleness_mean("async", 8) == 7
    assert T.staleness_mean("k_async", 8, 2) == pytest.approx(3.0)
    assert T.staleness_mean("k_async", 8, 8) == 0.0
    assert T.staleness_mean("k_batch_async", 8, 2) == pytest.approx(3.5)
    assert T.staleness_mean("k_batch_async", 8, 16) == pytest.approx(7 / 16)
    assert T.staleness_mean("k_sync", 8, 3) == 0.0
    assert T.staleness_mean("sync", 8) == 0.0
    assert T.staleness_mean("k_batch_sync", 8, 20) == 0.0
    with pytest.raises(ConfigError):
        T.staleness_mean("k_async", 8, 9)


# ------------------------------------------------------------------------------------------------
# error bounds


SGD = dict(eta=0.1, L=2.0, c=0.5, sigma2=1.0, K=4, m=2, F0_gap=3.0)


def test_error_bound_sync():
    J = np.array([0, 1, 10, 100, 10_000])
    b = T.error_bound_sync(J, **SGD)
    floor = 0.1 * 2.0 * 1.0 / (2 * 0.5 * 4 * 2)
    assert b.shape == J.shape
    assert b[0] == pytest.approx(3.0)
    assert b[-1] == pytest.approx(floor, rel=1e-12)
    assert np.all(np.diff(b) < 0)
    assert b[1] == pytest.approx(floor + 0.95 * (3.0 - floor))
    assert float(T.error_bound_sync(0, **SGD)) == pytest.approx(3.0)


def test_error_bound_async():
    kw = dict(SGD, gamma=0.5, p0=0.4)
    gp = 1 - 0.5 + 0.2
    J = np.array([0.0, 3.0, 1e6])
    b = T.error_bound_async(J, **kw)
    floor = 0.1 * 2.0 * 1.0 / (2 * 0.5 * gp * 4 * 2)
    assert b[0] == pytest.approx(3.0)
    assert b[1] == pytest.approx(floor + (1 - 0.1 * gp * 0.5) ** 3 * (3.0 - floor))
    assert b[-1] == pytest.approx(floor)
    # gamma' = 1 reproduces the sync bound
    same = T.error_bound_async(J, **dict(SGD, gamma=0.25, p0=0.5))
    assert np.allclose(same, T.error_bound_sync(J, **SGD))


def test_error_bound_vs_time():
    t = np.array([0.0, 1.0, 7.5])
    got = T.error_bound_vs_time(t, 0.25, T.error_bound_sync, **SGD)
    assert np.allclose(got, T.error_bound_sync(t / 0.25, **SGD))
    got = T.error_bound_vs_time(t, 0.5, T.error_bound_async, gamma=0.1, p0=1.0, **SGD)
    assert np.allclose(got, T.error_bound_async(t / 0.5, gamma=0.1, p0=1.0, **SGD))
    with pytest.raises(ConfigError, match="time_per_update"):
        T.error_bound_vs_time(t, 0.0, T.error_bound_sync, **SGD)
    with pytest.raises(ConfigError, match="t="):
        T.error_bound_vs_time([-1.0], 1.0, T.error_bound_sync, **SGD)


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(eta=0.6), "eta"),  # > 1/L
        (dict(eta=0.0), "eta"),
        (dict(L=-1.0), "L"),
        (dict(c=3.0), "c"),  # c > L
        (dict(c=0.0), "c"),
        (dict(sigma2=-1.0), "sigma2"),
        (dict(K=0), "K"),
        (dict(m=1.5), "m"),
        (dict(F0_gap=float("nan")), "F0_gap"),
    ],
)
def test_error_bound_bad_inputs(change, field):
    with pytest.raises(ConfigError, match=field):
        T.error_bound_sync([0, 1], **dict(SGD, **change))
    with pytest.raises(ConfigError, match=field):
        T.error_bound_async([0, 1], **dict(SGD, gamma=0.1, p0=0.5, **change))


def test_error_bound_async_bad_inputs():
    with pytest.raises(ConfigError, match="gamma"):
        T.error_bound_async([0], **SGD, gamma=2.0, p0=0.5)
    with pytest.raises(ConfigError, match="p0"):
        T.error_bound_async([0], **SGD, gamma=0.1, p0=1.5)
    with pytest.raises(ConfigError, match="updates"):
        T.error_bound_sync([0, -1], **SGD)
    with pytest.raises(ConfigError, match="eta"):  # eta * gamma' * c > 1
        T.error_bound_async([0], eta=1.0, L=1.0, c=1.0, sigma2=1.0, K=1, m=1, F0_gap=1.0, gamma=0.0, p0=1.0)


# ------------------------------------------------------------------------------------------------
# AdaSync


def test_adasync_fixed_point_and_monotone():
    P, K0 = 32, 4
    assert T.adasync_K(K0, P, 1.0, 1.0) == K0
    ratios = np.geomspace(1.0, 1e6, 40)
    ks = [T.adasync_K(K0, P, 1.0, 1.0 / r) for r in ratios]
    assert all(K0 <= k <= P for k in ks)
    assert all(b >= a for a, b in zip(ks, ks[1:]))
    assert ks[-1] == P - 1 or ks[-1] == P
    assert T.adasync_K(K0, P, 1.0, 10.0) == K0  # the loss went up: clip at K0
    for K0 in range(1, P + 1):
        assert T.adasync_K(K0, P, 2.0, 2.0) == K0


def test_adasync_solves_the_rule():
    P, K0, F0, Ft = 100, 10, 1.0, 0.05
    c = K0**2 / (P - K0) * F0 / Ft
    K = T.adasync_K(K0, P, F0, Ft)
    assert abs(K * K / (P - K) - c) <= min(abs(k * k / (P - k) - c) for k in (K - 1, K + 1))


def test_adasync_bad_inputs():
    with pytest.raises(ConfigError, match="K0"):
        T.adasync_K(5, 4, 1.0, 1.0)
    with pytest.raises(ConfigError, match="Ft"):
        T.adasync_K(1, 4, 1.0, 0.0)
    with pytest.raises(ConfigError, match="F0"):
        T.adasync_K(1, 4, -1.0, 1.0)
