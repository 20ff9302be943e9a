"""A straightforward NumPy reference of stale-gradient SGD on the noisy quadratic model (SPEC §1, §5, §6).

Written from SPEC.md's text, not from jaxsgd.engine: it keeps the *full history* of model versions
w_0, w_1, ... and evaluates the l-th gradient of update j at w_{j - staleness(l, j)}, in float64, one
trajectory at a time. The engine instead keeps one pulled model per worker (O(P x dim)); agreeing with
this reference on the same timeline and the same noise is the check that its bookkeeping is right.

Noise convention (shared with the engine, documented in jaxsgd.engine / jaxsgd.timeline and
NoisyQuadratic.weighted_grad): replica r's key is fold_in(key(seed), r); its dynamics key is
fold_in(replica key, 1); the update that turns w_j into w_{j+1} draws eps_j = normal(fold_in(dynamics
key, j), (dim,)). The K gradients of one update share that draw: sum_l eta_l * g_l has the exact law
sum_l eta_l h (w_tau_l - w*) + sqrt(sum_l eta_l^2) sqrt(sigma2 h / m) eps_j.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["nqm_noise", "rule_weight", "stale_sgd", "nqm_curvatures"]


def nqm_curvatures(h_max: float, h_min: float, dim: int) -> np.ndarray:
    """h_i log-spaced from h_max down to h_min (SPEC §6)."""
    return np.exp(np.linspace(np.log(h_max), np.log(h_min), dim))


def nqm_noise(seed: int, replica: int, updates: int, dim: int, dtype=None) -> np.ndarray:
    """eps_j for j = 0 .. updates-1 of one replica, shape (updates, dim), in the engine's dtype."""
    dtype = dtype or jnp.zeros(()).dtype
    rkey = jax.random.fold_in(jax.random.key(seed), replica)
    dkey = jax.random.fold_in(rkey, 1)
    keys = jax.vmap(lambda j: jax.random.fold_in(dkey, j))(jnp.arange(updates, dtype=jnp.uint32))
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, (dim,), dtype))(keys), dtype=np.float64)


def rule_weight(rule: str, params: dict, staleness: np.ndarray, dist2: np.ndarray, P: int) -> np.ndarray:
    """eta_{l,j} / eta for each gradient, from SPEC §4-§5 (plain NumPy, float64)."""
    s = np.asarray(staleness, dtype=np.float64)
    d = np.asarray(dist2, dtype=np.float64)
    eta = float(params["eta"])
    if rule == "constant":
        return np.ones_like(s)
    if rule == "staleness_aware":  # eta0 / max(staleness, 1)
        return 1.0 / np.maximum(s, 1.0)
    if rule == "delay_adaptive":  # eta * P / max(P, staleness)
        return P / np.maximum(s, P)
    if rule == "polynomial":  # eta * (1 + staleness)^(-a)
        return (1.0 + s) ** (-float(params["a"]))
    if rule == "threshold":  # dropped above the bound
        return (s <= float(params["bound"])).astype(np.float64)
    if rule == "compensating":  # min(C / ||w_j - w_tau||^2, eta_max), eta_max for fresh gradients
        out = np.ones_like(d)
        pos = d > 0
        out[pos] = np.minimum(float(params["C"]) / d[pos], eta) / eta
        return out
    raise ValueError(rule)


def stale_sgd(
    h: np.ndarray,
    w0: np.ndarray,
    staleness: np.ndarray,
    eps: np.ndarray,
    rule: str,
    params: dict,
    P: int,
    sigma2: float,
    batch_size: int = 1,
    return_weights: bool = False,
):
    """Plain SGD at the parameter server with the given staleness pattern.

    staleness: (updates, K) ints, staleness[j, l] = j - tau(l, j); eps: (updates, dim).
    Returns the errors F(w_j) - F* for j = 0 .. updates, shape (updates + 1,) (and, with
    return_weights, the (updates, K) weights eta_{l,j} / eta that were applied).
    """
    h = np.asarray(h, dtype=np.float64)
    eta = float(params["eta"])
    updates, K = staleness.shape
    history = [np.asarray(w0, dtype=np.float64).copy()]  # w_0, w_1, ..., all kept
    applied = np.empty((updates, K))
    for j in range(updates):
        w = history[j]
        s = staleness[j]
        assert np.all(s >= 0) and np.all(s <= j), (j, s)
        points = np.stack([history[j - int(sl)] for sl in s])  # (K, dim): w_tau for each gradient
        dist2 = np.sum((w - points) ** 2, axis=1)
        weight = rule_weight(rule, params, s, dist2, P)
        applied[j] = weight
        etas = eta * weight  # eta_{l,j}
        drift = np.sum(etas[:, None] * h * points, axis=0)
        noise = np.sqrt(np.sum(etas**2) * sigma2 / batch_size) * np.sqrt(h) * eps[j]
        history.append(w - (drift + noise) / K)
    errors = np.array([0.5 * np.sum(h * w * w) for w in history])
    return (errors, applied) if return_weights else errors
