"""Closed-form and numerically integrated runtime, staleness and error theory of SPEC §3-§4 (NumPy/SciPy, float64)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from . import delays as _delays
from .delays import (
    Constant,
    DelayLaw,
    Exponential,
    Gamma,
    Hyperexponential,
    Pareto,
    ShiftedExponential,
    Trace,
    Uniform,
    Weibull,
)
from .errors import ConfigError, positive, positive_int, require
from .variants import resolve

__all__ = [
    "harmonic",
    "order_statistic_mean",
    "aging_class",
    "time_per_update",
    "time_per_update_bound",
    "speedup_async_over_sync",
    "staleness_mean",
    "error_bound_sync",
    "error_bound_async",
    "error_bound_vs_time",
    "adasync_K",
]

# Quantile levels of the delay law used as panel edges (the integrator stays adaptive inside each panel).
_QUANTILES = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
              0.99, 1 - 1e-3, 1 - 1e-4, 1 - 1e-6, 1 - 1e-8)
_MAX_KINK_SPEEDS = 200  # per-speed kinks (support ends) are breakpoints up to this many distinct speeds
_LOG_XMAX = 700.0  # the tail integral stops at x = e^700
_CHUNK = 4096  # breakpoints per block in the exact sum for discrete laws


# --------------------------------------------------------------------------------------------------
# helpers


def harmonic(n: int) -> float:
    """The harmonic number H_n = sum_{i=1}^n 1/i as a float (H_0 = 0)."""
    n = positive_int("n", n, minimum=0)
    if n <= 100_000:
        return math.fsum(1.0 / i for i in range(1, n + 1))
    return float(special.digamma(n + 1.0) + np.euler_gamma)


def _check_law(delay) -> DelayLaw:
    if not isinstance(delay, DelayLaw):
        raise ConfigError(
            f"delay={delay!r} is invalid: must be a jaxsgd.delays law (e.g. delays.Exponential(rate=1.0))."
        )
    return delay


def _speed_groups(speeds, P: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct speed factors (sorted) and how many workers have each; homogeneous -> ([1.], [P])."""
    s = _delays.speeds(speeds, P)
    if s is None:
        return np.array([1.0]), np.array([P])
    vals, counts = np.unique(s, return_counts=True)
    return vals.astype(np.float64), counts.astype(np.int64)


def _exp_rate(delay: DelayLaw) -> float | None:
    """The rate if `delay` is an exponential law in disguise (memoryless), else None."""
    if isinstance(delay, Exponential):
        return delay.rate
    if isinstance(delay, ShiftedExponential) and delay.shift == 0:
        return delay.rate
    if isinstance(delay, (Gamma, Weibull)) and delay.shape == 1:
        return 1.0 / delay.scale
    if isinstance(delay, Hyperexponential):
        rates = {r for p, r in zip(delay.probs, delay.rates) if p > 0}
        if len(rates) == 1:
            return rates.pop()
    return None


def aging_class(delay: DelayLaw) -> str | None:
    """How a law's residual time compares with a fresh draw; returns 'memoryless', 'NLU', 'NSU' or None.

    - 'memoryless': exponential (also ShiftedExponential with shift 0, Gamma/Weibull with shape 1,
      Hyperexponential with a single rate): the residual time has the law of a fresh draw.
    - 'NLU' (new-longer-than-used, i.e. new-better-than-used): ShiftedExponential (shift > 0), Constant,
      Uniform, Weibull and Gamma with shape > 1. All have an increasing failure rate, which implies NLU.
    - 'NSU' (new-shorter-than-used): Hyperexponential (several rates), Pareto, Weibull and Gamma with
      shape < 1. All have a decreasing failure rate, which implies NSU.
    - None: neither is known (LogNormal, whose failure rate rises then falls; Trace; user laws).
    """
    _check_law(delay)
    if _exp_rate(delay) is not None:
        return "memoryless"
    if isinstance(delay, (ShiftedExponential, Constant, Uniform)):
        return "NLU"
    if isinstance(delay, (Weibull, Gamma)):
        return "NLU" if delay.shape > 1 else "NSU"
    if isinstance(delay, (Hyperexponential, Pareto)):
        return "NSU"
    return None


def _law_functions(delay: DelayLaw) -> tuple[Callable, Callable]:
    """Vectorised float64 (cdf, sf) of a continuous law, using SciPy's accurate sf where it exists."""
    if isinstance(delay, Hyperexponential):
        probs = np.asarray(delay.probs)[:, None]
        rates = np.asarray(delay.rates)[:, None]

        def sf(x):
            x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
            return np.sum(probs * np.exp(-rates * x.reshape(1, -1)), axis=0).reshape(x.shape)

        return (lambda x: 1.0 - sf(x)), sf
    try:
        frozen = delay.scipy()
    except NotImplementedError:
        return delay.cdf, delay.sf
    return frozen.cdf, frozen.sf


def _quantiles(delay: DelayLaw, qs: np.ndarray) -> np.ndarray:
    """Quantiles of the (unscaled) law at levels `qs` (SciPy ppf, else bisection on the cdf)."""
    try:
        return np.asarray(delay.scipy().ppf(qs), dtype=np.float64)
    except NotImplementedError:
        pass
    cdf, _ = _law_functions(delay)
    lo = np.full(qs.shape, float(delay.support_start))
    hi = lo + max(1.0, float(delay.mean) if math.isfinite(delay.mean) else 1.0)
    for _ in range(200):
        short = cdf(hi) < qs
        if not short.any():
            break
        hi = np.where(short, lo + 2.0 * (hi - lo), hi)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < qs
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return hi


def _support_end(delay: DelayLaw) -> float:
    if isinstance(delay, Uniform):
        return delay.high
    return math.inf


def _survival(probs: list[tuple[np.ndarray, np.ndarray]], counts: np.ndarray, K: int) -> np.ndarray:
    """P(fewer than K workers are below x): Poisson-binomial over groups of equally fast workers.

    probs[g] = (p, q): P(a worker of group g is below x) and its complement, arrays of x's shape (q is
    passed separately so that tails keep full relative precision); counts[g] is the group's size. One
    group reduces to a binomial cdf; several use a DP over workers on the counts 0..K-1.
    """
    if len(probs) == 1:
        q = np.clip(probs[0][1], 0.0, 1.0)
        m = int(counts[0])
        if K > m:
            return np.ones_like(q)
        # P(Bin(m, p) <= K-1) = I_q(m-K+1, K)
        return special.betainc(m - K + 1, K, q)
    dist = np.zeros((K,) + np.shape(probs[0][0]))
    dist[0] = 1.0
    for (p, q), m in zip(probs, counts):
        p, q = np.clip(p, 0.0, 1.0), np.clip(q, 0.0, 1.0)
        for _ in range(int(m)):
            dist[1:] = dist[1:] * q + dist[:-1] * p
            dist[0] *= q
    return dist.sum(axis=0)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)


def _integrate(f: Callable[[np.ndarray], np.ndarray], edges: np.ndarray, atol: float, rtol: float = 1e-12,
               max_rounds: int = 64, max_panels: int = 50_000) -> float:
    """int f over [edges[0], edges[-1]] by vectorised adaptive 10-point Gauss-Legendre with panel halving.

    Every round evaluates f once on all active panels (f must be elementwise on arrays); a panel is
    accepted when its estimate and the sum over its halves agree to rtol (relative) or atol (absolute).
    """
    a, b = np.asarray(edges[:-1], np.float64), np.asarray(edges[1:], np.float64)
    keep = b > a
    a, b = a[keep], b[keep]
    total, est = 0.0, None
    for _ in range(max_rounds):
        if a.size == 0:
            return total
        m = 0.5 * (a + b)
        lo, hi = np.concatenate([a, a, m]), np.concatenate([b, m, b])
        half = 0.5 * (hi - lo)
        x = (0.5 * (hi + lo))[:, None] + half[:, None] * _GL_X
        I = half * (f(x) @ _GL_W)
        n = a.size
        left, right = I[n:2 * n], I[2 * n:]
        fine = left + right
        ok = np.abs(fine - I[:n]) <= np.maximum(rtol * np.abs(fine), atol)
        ok |= m <= a  # panels too narrow to split
        total += float(fine[ok].sum())
        bad = ~ok
        a, b = np.concatenate([a[bad], m[bad]]), np.concatenate([m[bad], b[bad]])
        est = np.concatenate([left[bad], right[bad]])
        if a.size > max_panels:
            break
    return total + (float(est.sum()) if est is not None and a.size else 0.0)


def _discrete_mean(values: np.ndarray, svals: np.ndarray, counts: np.ndarray, K: int) -> float:
    """Exact E[X_{K:P}] for a law with atoms at `values` (equal weights, repeats allowed)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = values.size
    br = np.unique(np.outer(svals, values).ravel())
    total = br[0]  # the survival is 1 before the first possible finishing time
    for start in range(0, br.size - 1, _CHUNK):
        lo, hi = br[start:start + _CHUNK + 1][:-1], br[start + 1:start + _CHUNK + 1]
        mid = 0.5 * (lo + hi)  # the survival is constant on [lo, hi); evaluate inside, not at a jump
        probs = []
        for s in svals:
            p = np.searchsorted(values, mid / s, side="right") / n
            probs.append((p, 1.0 - p))
        total += float(np.sum(_survival(probs, counts, K) * (hi - lo)))
    return float(total)


def _continuous_mean(delay: DelayLaw, svals: np.ndarray, counts: np.ndarray, K: int) -> float:
    """E[X_{K:P}] = int_0^inf P(X_{K:P} > x) dx, integrated over panels cut at quantiles and kinks."""
    P = int(counts.sum())
    if isinstance(delay, Pareto) and delay.shape * (P - K + 1) <= 1:
        return math.inf  # P(X_{K:P} > x) ~ x^{-shape (P-K+1)}: the integral diverges
    cdf, sf = _law_functions(delay)
    s_min, s_max = float(svals[0]), float(svals[-1])
    start = float(delay.support_start) * s_min  # the integrand is exactly 1 on [0, start)
    end = _support_end(delay) * s_max  # and exactly 0 beyond `end`

    def survival(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return _survival([(cdf(x / s), sf(x / s)) for s in svals], counts, K)

    qs = np.array(sorted(set(_QUANTILES) | {1.0 / (P + 1), K / (P + 1), P / (P + 1)}))
    base = _quantiles(delay, qs)
    pts = [base * s_min, base * s_max]
    if len(svals) <= _MAX_KINK_SPEEDS:
        pts.append(float(delay.support_start) * svals)
        if math.isfinite(end):
            pts.append(_support_end(delay) * svals)
    pts = np.unique(np.concatenate([np.atleast_1d(p) for p in pts]))
    pts = pts[np.isfinite(pts) & (pts > start) & (pts < end)]
    edges = np.concatenate([[start], pts, [end] if math.isfinite(end) else []])
    atol = 1e-16 * max(start, float(np.median(base)) * s_max)  # far below any E[X_{K:P}] of interest
    total = start + _integrate(survival, edges, atol)
    if not math.isfinite(end):
        # the tail in log scale: int_b^inf S(x) dx = int_{ln b}^{~700} S(e^y) e^y dy (power laws decay)
        b = float(edges[-1])
        if b <= 0:  # pragma: no cover - every quantile is 0
            b = 1e-300
        y0 = math.log(b)
        ys = y0 + np.concatenate([[0.0], 2.0 ** np.arange(-3, 11)])
        ys = np.append(ys[ys < _LOG_XMAX], _LOG_XMAX) if y0 < _LOG_XMAX else np.array([])
        if ys.size > 1:
            total += _integrate(lambda y: survival(np.exp(y)) * np.exp(y), ys, atol)
    return float(total) if math.isfinite(total) else math.inf


def order_statistic_mean(delay: DelayLaw, P: int, K: int, speeds=None) -> float:
    """E[X_{K:P}], the mean of the K-th smallest of P independent compute times; returns a float.

    Integrates the survival sum_{i<K} P(exactly i of P are below x) (SPEC §3) by adaptive Gauss-Legendre
    quadrature, vectorised over nodes, on panels cut at quantiles and kinks of the law (relative error
    ~1e-12 for smooth laws). The integrand is a binomial cdf for homogeneous workers, a Poisson-binomial
    DP over workers (cost O(P K) per node) when worker i draws s_i * X (`speeds`: None, a pattern name
    of `delays.speeds`, or P positive factors). Laws with atoms
    (Constant, Trace) are summed exactly over their jumps. Returns math.inf when the integral diverges
    (Pareto with shape * (P-K+1) <= 1) or the quadrature does not give a finite value.
    """
    delay = _check_law(delay)
    P = positive_int("P", P)
    K = positive_int("K", K)
    require(K <= P, "K", K, f"must be in 1..P (P={P}) for an order statistic")
    svals, counts = _speed_groups(speeds, P)
    if isinstance(delay, Constant):
        return _discrete_mean(np.array([delay.value]), svals, counts, K)
    if isinstance(delay, Trace):
        return _discrete_mean(delay.values, svals, counts, K)
    return _continuous_mean(delay, svals, counts, K)


# --------------------------------------------------------------------------------------------------
# runtime (SPEC §3)


def _need_delay(delay) -> DelayLaw:
    if delay is None:
        raise ConfigError("delay is required: a jaxsgd.delays law (e.g. delays.Exponential(rate=1.0)).")
    return _check_law(delay)


def time_per_update(variant: str, P: int, K: int | None = None, delay: DelayLaw | None = None,
                    speeds=None) -> float | None:
    """The long-run mean wall-clock time per update E[T] (SPEC §3); returns a float, or None if unknown.

    - k_sync (and sync, K = P): E[X_{K:P}] for any law and speeds.
    - k_batch_async (and async, K = 1): K E[X] / P; heterogeneous K / sum_i 1/(s_i E[X]).
    - k_batch_sync: exponential law: K / (sum of the workers' rates) = K / (P rate) when homogeneous
      (Poisson arrivals, memoryless); other laws None (see `time_per_update_bound`).
    - k_async: exponential law: E[X_{K:P}] = (H_P - H_{P-K}) / rate when homogeneous (memoryless);
      other laws None (see `time_per_update_bound`).
    """
    setting = resolve(variant, P, K)
    delay = _need_delay(delay)
    v, P, K = setting.variant, setting.P, setting.K
    svals, counts = _speed_groups(speeds, P)
    homogeneous = len(svals) == 1 and svals[0] == 1.0
    rate = _exp_rate(delay)
    if v == "k_batch_async":
        mean = delay.mean
        if not math.isfinite(mean):
            return math.inf
        return float(K * mean / float(np.sum(counts / svals)))
    if v == "k_batch_sync":
        if rate is None:
            return None
        return float(K / (rate * float(np.sum(counts / svals))))
    if v == "k_async" and rate is None:
        return None
    # k_sync, or k_async with a memoryless law
    if rate is not None and homogeneous:
        return (harmonic(P) - harmonic(P - K)) / rate
    return order_statistic_mean(delay, P, K, speeds)


def time_per_update_bound(variant: str, P: int, K: int | None, delay: DelayLaw,
                          speeds=None) -> tuple[str, float] | None:
    """A bound on E[T] where only a bound is known; returns (kind, value), kind 'upper' or 'lower', or None.

    - k_batch_sync, any law: ('upper', E[X_{K:P}]) for K <= P (K distinct workers have finished by then);
      for K > P ('upper', ceil(K/P) E[X_{P:P}]) (every worker has done ceil(K/P) gradients by then).
    - k_async: by the law's `aging_class`: 'NLU' laws (ShiftedExponential, Constant, Uniform,
      Weibull/Gamma shape > 1) give ('upper', E[X_{K:P}]); 'NSU' laws (Hyperexponential, Pareto,
      Weibull/Gamma shape < 1) give ('lower', E[X_{K:P}]); memoryless (exponential) laws give
      ('upper', E[X_{K:P}]), which holds with equality; other laws (LogNormal, Trace) None.
    - k_sync, k_batch_async (exact values known, see `time_per_update`): None.
    With `speeds`, E[X_{K:P}] is the heterogeneous order statistic (the same arguments apply per worker).
    """
    setting = resolve(variant, P, K)
    delay = _need_delay(delay)
    v, P, K = setting.variant, setting.P, setting.K
    if v == "k_batch_sync":
        if K <= P:
            return ("upper", order_statistic_mean(delay, P, K, speeds))
        return ("upper", math.ceil(K / P) * order_statistic_mean(delay, P, P, speeds))
    if v == "k_async":
        cls = aging_class(delay)
        if cls in ("NLU", "memoryless"):
            return ("upper", order_statistic_mean(delay, P, K, speeds))
        if cls == "NSU":
            return ("lower", order_statistic_mean(delay, P, K, speeds))
    return None


def speedup_async_over_sync(P: int, delay: DelayLaw) -> float:
    """E[T_sync] / E[T_async] = E[X_{P:P}] / (E[X]/P) for homogeneous workers; returns a float.

    Exponential laws use the closed form P * H_P. Raises ConfigError when E[X] is infinite.
    """
    delay = _check_law(delay)
    P = positive_int("P", P)
    mean = delay.mean
    if not math.isfinite(mean):
        raise ConfigError(f"delay={delay.describe()} has an infinite mean: the async time per update and the"
                          " speed-up are undefined.")
    if _exp_rate(delay) is not None:
        return P * harmonic(P)
    return order_statistic_mean(delay, P, P) / (mean / P)


def staleness_mean(variant: str, P: int, K: int | None = None) -> float | None:
    """Long-run mean staleness of applied gradients for homogeneous workers (SPEC §3); returns a float.

    async: P - 1; k_async: (P - K) / K; k_batch_async: (P - 1) / K; k_sync, k_batch_sync: 0.
    (Returns None for no variant today; the Optional return type leaves room for unknown cases.)
    """
    setting = resolve(variant, P, K)
    v, P, K = setting.variant, setting.P, setting.K
    if v in ("k_sync", "k_batch_sync"):
        return 0.0
    if v == "k_async":
        return (P - K) / K
    if v == "k_batch_async":
        return (P - 1) / K
    return None  # pragma: no cover - resolve() only yields the four canonical variants


# --------------------------------------------------------------------------------------------------
# error theory (SPEC §4)


def _nonneg(field: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}={value!r} is invalid: must be a number >= 0.") from None
    require(math.isfinite(v) and v >= 0, field, value, "must be a finite number >= 0")
    return v


def _updates(updates) -> np.ndarray:
    try:
        J = np.asarray(updates, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"updates={updates!r} is invalid: must be numbers >= 0.") from None
    require(bool(np.all(J >= 0)), "updates", updates, "every update count must be >= 0 (and not NaN)")
    return J


def _common(eta, L, c, sigma2, K, m, F0_gap):
    L = positive("L", L)
    c = positive("c", c)
    require(c <= L, "c", c, f"must be <= L={L} (strong convexity cannot exceed smoothness)")
    eta = positive("eta", eta)
    require(eta <= (1.0 / L) * (1.0 + 1e-12), "eta", eta, f"must be <= 1/L = {1.0 / L}")
    return eta, L, c, _nonneg("sigma2", sigma2), positive_int("K", K), positive_int("m", m), _nonneg("F0_gap", F0_gap)


def _shape(J: np.ndarray, floor: float, factor: float, F0_gap: float):
    out = floor + np.power(factor, J) * (F0_gap - floor)
    return out[()] if out.ndim == 0 else out


def error_bound_sync(updates, eta: float, L: float, c: float, sigma2: float, K: int, m: int, F0_gap: float):
    """K-sync / K-batch-sync bound on E[F(w_J)] - F* after J = `updates` updates (SPEC §4).

    Returns floor + (1 - eta c)^J (F0_gap - floor), floor = eta L sigma2 / (2 c K m), as a float64 array
    shaped like `updates` (a NumPy scalar for a scalar). Needs 0 < c <= L, 0 < eta <= 1/L.
    """
    J = _updates(updates)
    eta, L, c, sigma2, K, m, F0_gap = _common(eta, L, c, sigma2, K, m, F0_gap)
    floor = eta * L * sigma2 / (2.0 * c * K * m)
    return _shape(J, floor, 1.0 - eta * c, F0_gap)


def error_bound_async(updates, eta: float, L: float, c: float, sigma2: float, K: int, m: int, F0_gap: float,
                      gamma: float, p0: float):
    """Async / K-async bound on E[F(w_J)] - F* after J = `updates` updates (SPEC §4).

    With gamma' = 1 - gamma + p0/2 (p0: lower bound on the probability that a gradient is fresh; gamma:
    E||grad F(w_j) - grad F(w_tau)||^2 <= gamma E||grad F(w_j)||^2), returns
    floor + (1 - eta gamma' c)^J (F0_gap - floor), floor = eta L sigma2 / (2 c gamma' K m), as a float64
    array shaped like `updates`. Needs gamma' > 0, 0 < eta <= 1/L and eta gamma' c <= 1.
    """
    J = _updates(updates)
    eta, L, c, sigma2, K, m, F0_gap = _common(eta, L, c, sigma2, K, m, F0_gap)
    gamma = _nonneg("gamma", gamma)
    p0 = _nonneg("p0", p0)
    require(p0 <= 1, "p0", p0, "must be a probability in [0, 1]")
    gp = 1.0 - gamma + p0 / 2.0
    require(gp > 0, "gamma", gamma, f"must give gamma' = 1 - gamma + p0/2 > 0 (p0={p0}; gamma < {1 + p0 / 2})")
    require(eta * gp * c <= 1.0 + 1e-12, "eta", eta,
            f"must satisfy eta * gamma' * c <= 1 (gamma'={gp}, c={c}: eta <= {1.0 / (gp * c)})")
    floor = eta * L * sigma2 / (2.0 * c * gp * K * m)
    return _shape(J, floor, max(1.0 - eta * gp * c, 0.0), F0_gap)


def error_bound_vs_time(t, time_per_update: float, bound_fn: Callable, **kw):
    """An error bound against wall-clock time: returns bound_fn(t / time_per_update, **kw) (J = t / E[T]).

    `bound_fn` is `error_bound_sync` or `error_bound_async`; `kw` are its other parameters.
    """
    ET = positive("time_per_update", time_per_update)
    try:
        t_arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"t={t!r} is invalid: must be times >= 0.") from None
    require(bool(np.all(t_arr >= 0)), "t", t, "every time must be >= 0 (and not NaN)")
    if not callable(bound_fn):
        raise ConfigError(f"bound_fn={bound_fn!r} is invalid: must be error_bound_sync or error_bound_async.")
    return bound_fn(t_arr / ET, **kw)


def adasync_K(K0: int, P: int, F0: float, Ft: float) -> int:
    """AdaSync's K for the current loss (SPEC §4); returns an int in [K0, P].

    Solves K^2 / (P - K) = c with c = (K0^2 / (P - K0)) F0 / Ft, i.e. the positive root of
    K^2 + c K - c P = 0, rounds it, and clips it to [K0, P]. K0 = P gives P.
    """
    P = positive_int("P", P)
    K0 = positive_int("K0", K0)
    require(K0 <= P, "K0", K0, f"must be in 1..P (P={P})")
    F0 = positive("F0", F0)
    Ft = positive("Ft", Ft)
    if K0 == P:
        return P
    c = K0 * K0 / (P - K0) * (F0 / Ft)
    root = 2.0 * c * P / (c + math.sqrt(c * c + 4.0 * c * P))  # = (-c + sqrt(c^2 + 4cP)) / 2, no cancellation
    return int(min(max(round(root), K0), P))
