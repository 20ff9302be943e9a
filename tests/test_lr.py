"""Learning-rate rules (SPEC §4-§5), their grids and validation, schedules, and the server optimizer."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsgd
from jaxsgd.delays import Exponential
from jaxsgd.errors import ConfigError
from jaxsgd.lr import Compensating, Constant, DelayAdaptive, Polynomial, StalenessAware, Threshold
from jaxsgd.problems import NoisyQuadratic

sys.path.insert(0, str(Path(__file__).parent))
from reference_sgd import nqm_noise  # noqa: E402

DTYPE = jnp.zeros(()).dtype

STALENESS = np.array([0, 1, 2, 5, 10])
DIST2 = np.array([0.0, 0.01, 0.5, 2.0, 100.0])


def weights(rule, staleness=STALENESS, dist2=DIST2, P=4, index=0) -> np.ndarray:
    params = {k: jnp.asarray(v[index], jnp.int32 if k in rule.integer_fields else DTYPE) for k, v in rule.grid().items()}
    w = rule.weight(params, jnp.asarray(staleness, jnp.int32), jnp.asarray(dist2, DTYPE), P)
    assert w.shape == np.shape(staleness)
    return np.asarray(w, dtype=np.float64)


# ---------------------------------------------------------------------------- weights by hand


def test_compensating_fresh_gradients_get_eta_max():
    """The paper's rule: eta_{l,j} = min(C / ||w_j - w_tau||^2, eta_max) is eta_max when w_tau = w_j."""
    for eta, C in [(0.1, 1e-6), (2.0, 5.0), (0.5, 1e9)]:
        rule = Compensating(eta=eta, C=C)
        w = weights(rule, staleness=np.array([0, 0, 3, 7]), dist2=np.zeros(4))
        np.testing.assert_array_equal(w, np.ones(4))  # weight 1: eta_{l,j} = eta * 1 = eta_max


@pytest.mark.parametrize(
    "rule, expected",
    [
        (Constant(eta=0.3), [1, 1, 1, 1, 1]),
        # Zhang et al.: eta0 / max(staleness, 1)
        (StalenessAware(eta=0.3), [1, 1, 1 / 2, 1 / 5, 1 / 10]),
        # Mishchenko et al.: eta P / max(P, staleness), P = 4
        (DelayAdaptive(eta=0.3), [1, 1, 1, 4 / 5, 4 / 10]),
        # (1 + staleness)^(-a)
        (Polynomial(eta=0.3, a=0.5), [1, 1 / math.sqrt(2), 1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(11)]),
        (Polynomial(eta=0.3, a=2.0), [1, 1 / 4, 1 / 9, 1 / 36, 1 / 121]),
        (Polynomial(eta=0.3, a=0.0), [1, 1, 1, 1, 1]),
        # dropped above the bound
        (Threshold(eta=0.3, bound=2), [1, 1, 1, 0, 0]),
        (Threshold(eta=0.3, bound=0), [1, 0, 0, 0, 0]),
        # min(C / dist2, eta_max) / eta_max with eta_max = 0.1, C = 0.01: C/dist2 = inf, 1, 0.02, 0.005, 1e-4
        (Compensating(eta=0.1, C=0.01), [1, 1, 0.2, 0.05, 0.001]),
        # eta_max = 2, C = 1: C/dist2 = inf, 100, 2, 0.5, 0.01
        (Compensating(eta=2.0, C=1.0), [1, 1, 1, 0.25, 0.005]),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, jaxsgd.lr.Rule) else None,
)
def test_rule_weights_match_hand_computed_values(rule, expected):
    np.testing.assert_allclose(weights(rule), expected, rtol=1e-6, atol=0)


def test_delay_adaptive_depends_on_P():
    np.testing.assert_allclose(weights(DelayAdaptive(eta=0.1), P=2), [1, 1, 1, 2 / 5, 2 / 10], rtol=1e-6)
    np.testing.assert_allclose(weights(DelayAdaptive(eta=0.1), P=16), [1, 1, 1, 1, 1], rtol=1e-6)


def test_weights_trace_under_jit_and_vmap_over_the_grid():
    rule = Compensating(eta=[0.1, 2.0], C=[0.01, 1.0])
    grid = {k: jnp.asarray(v, DTYPE) for k, v in rule.grid().items()}
    f = jax.jit(jax.vmap(lambda p: rule.weight(p, jnp.asarray(STALENESS, jnp.int32), jnp.asarray(DIST2, DTYPE), 4)))
    got = np.asarray(f(grid))
    for g in range(rule.grid_size):
        eta, C = rule.grid()["eta"][g], rule.grid()["C"][g]
        with np.errstate(divide="ignore"):
            expected = np.where(DIST2 > 0, np.minimum(C / DIST2, eta) / eta, 1.0)
        np.testing.assert_allclose(got[g], expected, rtol=1e-6)


# ---------------------------------------------------------------------------- grids


def test_grid_is_the_cartesian_product():
    rule = Polynomial(eta=[0.1, 0.2, 0.3], a=[0.0, 0.5])
    g = rule.grid()
    assert set(g) == {"eta", "a"} and rule.grid_size == 6
    assert list(zip(g["eta"], g["a"])) == list(itertools.product([0.1, 0.2, 0.3], [0.0, 0.5]))
    rule = Compensating(eta=[0.5], C=[1e-3, 1e-2, 1e-1])
    assert rule.grid_size == 3 and rule.grid()["eta"].tolist() == [0.5] * 3
    assert rule.grid()["C"].tolist() == [1e-3, 1e-2, 1e-1]
    rule = Threshold(eta=[0.1, 0.2], bound=[0, 3])
    assert sorted(zip(rule.grid()["eta"], rule.grid()["bound"])) == [(0.1, 0), (0.1, 3), (0.2, 0), (0.2, 3)]
    assert Constant(eta=0.1).grid_size == 1 and Constant(eta=(0.1, 0.2)).grid_size == 2


def test_grid_point_and_structure():
    rule = Polynomial(eta=[0.1, 0.2], a=[0.0, 0.5, 1.0])
    for i in range(rule.grid_size):
        point = rule.at(i)
        assert point.grid_size == 1
        assert (point.eta[0], point.a[0]) == (rule.grid()["eta"][i], rule.grid()["a"][i])
    s = rule.structure()
    assert s.grid_size == 1 and hash(s) == hash(rule.structure())


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: Constant(eta=0), "lr.eta"),
        (lambda: Constant(eta=-0.1), "lr.eta"),
        (lambda: Constant(eta=[0.1, -0.1]), "lr.eta"),
        (lambda: Constant(eta="fast"), "lr.eta"),
        (lambda: Constant(eta=[0.1, None]), "lr.eta"),
        (lambda: Constant(eta=[]), "lr.eta"),
        (lambda: Constant(eta=float("nan")), "lr.eta"),
        (lambda: Constant(eta=float("inf")), "lr.eta"),
        (lambda: Polynomial(a=-0.5), "lr.a"),
        (lambda: Polynomial(a="x"), "lr.a"),
        (lambda: Threshold(bound=-1), "lr.bound"),
        (lambda: Threshold(bound=[2, -1]), "lr.bound"),
        (lambda: Compensating(C=0), "lr.C"),
        (lambda: Compensating(C=-1.0), "lr.C"),
        (lambda: Compensating(C={"a": 1}), "lr.C"),
        (lambda: Compensating(eta=0.0, C=1.0), "lr.eta"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(build, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


def test_threshold_bound_must_be_an_integer():
    with pytest.raises(ConfigError, match=r"lr\.bound"):
        Threshold(bound=1.5)


def test_unknown_schedule_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"lr\.schedule") as err:
        Constant(eta=0.1, schedule="exponential_decy")
    assert "Did you mean" in str(err.value) and "'exponential_decay'" in str(err.value)
    with pytest.raises(ConfigError, match=r"lr\.schedule"):
        Constant(eta=0.1, schedule="adam")  # an optax name, but not a schedule


@pytest.mark.parametrize(
    "kwargs",
    [{"transition_steps": 10, "decay_rte": 0.5}, {"decay_rate": 0.5}, {"transition_steps": 10, "decay_rate": 0.5, "x": 1}],
)
def test_schedule_kwargs_that_do_not_fit_are_rejected(kwargs):
    with pytest.raises(ConfigError, match=r"lr\.schedule_kwargs"):
        Constant(eta=0.1, schedule="exponential_decay", schedule_kwargs=kwargs)


def test_make_by_name():
    rule = jaxsgd.lr.make("compensating", eta=0.2, C=[0.5, 1.0])
    assert isinstance(rule, Compensating) and rule.eta == (0.2,) and rule.C == (0.5, 1.0)
    assert rule == Compensating(eta=0.2, C=[0.5, 1.0])
    for name, cls in jaxsgd.lr.RULES.items():
        assert isinstance(jaxsgd.lr.make(name, eta=0.1), cls) and cls.name == name
    assert jaxsgd.lr.make("polynomial", eta=[0.1, 0.2], a=0.5).grid_size == 2
    with pytest.raises(ConfigError, match="Did you mean 'polynomial'"):
        jaxsgd.lr.make("polynomal", eta=0.1)
    with pytest.raises(ConfigError, match="no parameter"):
        jaxsgd.lr.make("constant", eta=0.1, a=0.5)
    with pytest.raises(ConfigError, match=r"lr\.C"):
        jaxsgd.lr.make("compensating", C=-1)


def test_params_are_plain():
    p = Polynomial(eta=[0.1, 0.2], a=0.5, schedule="exponential_decay",
                   schedule_kwargs={"transition_steps": 10, "decay_rate": 0.5}).params()
    assert p == {"rule": "polynomial", "eta": [0.1, 0.2], "a": 0.5, "schedule": "exponential_decay",
                 "schedule.decay_rate": 0.5, "schedule.transition_steps": 10}


# ---------------------------------------------------------------------------- optimizer


def test_unknown_optimizer_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"optimizer\.name") as err:
        jaxsgd.Optimizer("adma")
    assert "Did you mean" in str(err.value) and "'adam'" in str(err.value)
    with pytest.raises(ConfigError, match=r"optimizer\.kwargs"):
        jaxsgd.Optimizer("adam", kwargs={"bta1": 0.9})
    with pytest.raises(ConfigError):
        jaxsgd.simulate(NoisyQuadratic(dim=2), "k_sync", P=2, K=1, delay=Exponential(1.0), optimizer="sgdd")


@pytest.mark.parametrize(
    "opt, tx",
    [
        (jaxsgd.Optimizer(), optax.sgd(0.1)),
        (jaxsgd.Optimizer("momentum"), optax.sgd(0.1, momentum=0.9)),
        (jaxsgd.Optimizer("nesterov"), optax.sgd(0.1, momentum=0.9, nesterov=True)),
        (jaxsgd.Optimizer("adam", kwargs={"b1": 0.8}), optax.adam(0.1, b1=0.8)),
    ],
)
def test_optimizer_builds_the_optax_optimizer(opt, tx):
    mine = opt.build(0.1)
    w = jnp.arange(3.0)
    s1, s2 = mine.init(w), tx.init(w)
    for g in (jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 0.3, -1.0])):
        u1, s1 = mine.update(g, s1, w)
        u2, s2 = tx.update(g, s2, w)
        np.testing.assert_allclose(u1, u2, rtol=1e-6)


# ---------------------------------------------------------------------------- schedules in the engine

SCHED_PROB = NoisyQuadratic(dim=5, h_max=1.0, h_min=0.1, sigma2=0.5)


def test_schedule_trajectory_equals_optax_loop():
    seed, P, K, U = 3, 3, 2, 40
    rule = Constant(eta=0.1, schedule="exponential_decay", schedule_kwargs={"transition_steps": 10, "decay_rate": 0.5})
    res = jaxsgd.simulate(SCHED_PROB, "k_sync", P=P, K=K, delay=Exponential(1.0), lr=rule, updates=U, record_every=1,
                          replicas=2, seed=seed)
    h = jnp.asarray(SCHED_PROB.curvatures(), DTYPE)

    def loop(tx, eps):
        w = jnp.full(SCHED_PROB.dim, SCHED_PROB.init, DTYPE)
        state = tx.init(w)
        errors = [0.5 * jnp.sum(h * w * w)]
        for j in range(U):
            g = h * w + jnp.sqrt(SCHED_PROB.sigma2 * h / K) * eps[j]
            upd, state = tx.update(g, state, w)
            w = optax.apply_updates(w, upd)
            errors.append(0.5 * jnp.sum(h * w * w))
        return np.asarray(jnp.stack(errors), dtype=np.float64)

    for r in range(2):
        eps = jnp.asarray(nqm_noise(seed, r, U, SCHED_PROB.dim), DTYPE)
        ref = loop(optax.sgd(optax.exponential_decay(init_value=0.1, transition_steps=10, decay_rate=0.5)), eps)
        np.testing.assert_allclose(res.records.error[0, r], ref, rtol=2e-5, atol=1e-7)
    # the schedule matters: the same noise at a constant rate 0.1 gives another trajectory
    constant = loop(optax.sgd(0.1), eps)
    assert np.max(np.abs(res.records.error[0, 1] - constant) / constant) > 1e-2
    assert res.summary()["lr"]["schedule"] == "exponential_decay"


def test_schedule_with_dict_kwargs_runs():
    rule = Constant(eta=0.1, schedule="piecewise_constant_schedule", schedule_kwargs={"boundaries_and_scales": {5: 0.5}})
    res = jaxsgd.simulate(SCHED_PROB, "k_sync", P=2, K=1, delay=Exponential(1.0), lr=rule, updates=10, record_every=1,
                          replicas=2, seed=0)
    assert np.all(np.isfinite(res.records.error))
