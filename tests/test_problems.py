"""The real-data problems (SPEC §6): losses, unbiased mini-batch gradients, F* and its disk cache,
test accuracy, the .npz loader's checks, and what the engine relies on (hashable, cached data)."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxsgd.errors import ConfigError
from jaxsgd.problems import (
    MLP,
    PROBLEMS,
    LeastSquares,
    LogisticRegression,
    NoisyQuadratic,
    Npz,
    SoftmaxRegression,
    glm,
    make,
    solver,
)
from jaxsgd.problems.datasets import synthetic_classification
from jaxsgd.problems.noisy_quadratic import UNROLL_K


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own F* cache directory (never the home directory)."""
    path = tmp_path / "cache"
    monkeypatch.setenv(solver.CACHE_ENV, str(path))
    return path


@pytest.fixture(scope="session")
def npz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("npz")
    X, y = synthetic_classification(240, 4, 2, seed=3)
    np.savez(d / "logistic.npz", X=X[:200], y=y[:200], X_test=X[200:], y_test=y[200:])
    X, y = synthetic_classification(200, 4, 3, seed=4)
    np.savez(d / "softmax.npz", X=X, y=y)
    ls = LeastSquares(n=200, dim=5).host_data()
    np.savez(d / "least_squares.npz", X=ls.X, y=ls.y)
    return d


CASES = {
    "least_squares": lambda d: LeastSquares(),
    "logistic_breast_cancer": lambda d: LogisticRegression(),
    "softmax_synthetic": lambda d: SoftmaxRegression(dataset="synthetic", n=300, features=5, classes=3),
    "mlp": lambda d: MLP(hidden=8),
    "npz_logistic": lambda d: Npz(path=str(d / "logistic.npz"), task="logistic"),
    "npz_softmax": lambda d: Npz(path=str(d / "softmax.npz"), task="softmax", l2=1e-2),
}


@pytest.fixture(params=list(CASES))
def problem(request, npz_dir):
    return CASES[request.param](npz_dir)


def smoothness(problem) -> float:
    """An upper bound on the Lipschitz constant of grad F for a GLM."""
    X = problem.host_data().X
    curvature = {"least_squares": 1.0, "logistic": 0.25, "softmax": 0.5}[problem.task]
    return curvature * np.linalg.eigvalsh(X.T @ X / len(X)).max() + problem.l2


def step_size(problem) -> float:
    return 0.3 if isinstance(problem, MLP) else 1.0 / smoothness(problem)


def nearby(problem, data, scale=0.1, shape=()):
    """w_0 plus N(0, scale^2) noise (numpy, so nothing compiles), of shape `shape + (dim,)`."""
    w0 = problem.init_params(data)
    return w0 + jnp.asarray(scale * np.random.default_rng(1).standard_normal(shape + w0.shape), w0.dtype)


@functools.partial(jax.jit, static_argnums=(0, 4))
def gradient_descent(problem, data, w0, eta, steps):
    """(w after `steps` full-batch GD steps, F before each step)."""

    def step(w, _):
        return w - eta * jax.grad(problem.loss, argnums=1)(data, w), problem.loss(data, w)

    return jax.lax.scan(step, w0, None, length=steps)


def test_registry_names():
    assert {"noisy_quadratic", "least_squares", "logistic_regression", "softmax_regression", "mlp", "npz"} <= set(PROBLEMS)
    for name, cls in PROBLEMS.items():
        assert cls.name == name


@functools.partial(jax.jit, static_argnums=(0,))
def value_and_grad(problem, data, w):
    """(F(w), grad F(w)): the full-batch loss and its exact gradient."""
    return jax.value_and_grad(problem.loss, argnums=1)(data, w)


@functools.partial(jax.jit, static_argnums=(0, 3))
def minibatch_gradients(problem, data, w, N):
    """(N, dim) stochastic gradients (batch 4) at w, from the keys split from key(0)."""
    return jax.vmap(lambda k: problem.grad(data, w, k, 4))(jax.random.split(jax.random.key(0), N))


# one case per loss (the gradient code is shared): breast cancer and npz softmax add nothing here
@pytest.mark.parametrize("case", ["least_squares", "npz_logistic", "softmax_synthetic", "mlp"])
def test_minibatch_gradients_are_unbiased(case, npz_dir):
    problem = CASES[case](npz_dir)
    data = problem.data()
    w0 = problem.init_params(data)
    assert w0.shape == (problem.dim,) and w0.dtype == data["X"].dtype == jnp.zeros(()).dtype
    assert np.isfinite(float(value_and_grad(problem, data, w0)[0]))

    # the mean of N stochastic gradients (fixed keys) is within z standard errors of grad F, elementwise,
    # z >= 4 Bonferroni-corrected over the coordinates (a 0.1% chance of any miss under the null)
    N, w = 2000, nearby(problem, data)
    draws = minibatch_gradients(problem, data, w, N)
    exact = value_and_grad(problem, data, w)[1]
    mean, se = np.mean(draws, 0), np.std(draws, 0, ddof=1) / np.sqrt(N)
    z = max(4.0, scipy.stats.norm.isf(1e-3 / (2 * problem.dim)))
    assert np.all(np.abs(mean - exact) <= z * se + 1e-6)


def test_weighted_grad_is_the_weighted_sum_of_single_gradients():
    # Problem.weighted_grad is shared by all the data problems: check it on one with (d, C) weights
    problem = SoftmaxRegression(dataset="synthetic", n=300, features=5, classes=3)
    data = problem.data()
    points, weights, key = nearby(problem, data, shape=(3,)), jnp.array([0.5, -1.0, 2.0]), jax.random.key(5)

    @jax.jit
    def both(data, points, weights, key):
        # the l-th gradient is drawn from fold_in(key, l)
        by_hand = sum(weights[l] * problem.grad(data, points[l], jax.random.fold_in(key, l), 6) for l in range(3))
        return problem.weighted_grad(data, points, weights, key, 6), by_hand

    np.testing.assert_allclose(*both(data, points, weights, key), rtol=1e-5, atol=1e-6)


def _dot_precisions(jaxpr) -> list:
    """The precision of every dot_general in a jaxpr, sub-jaxprs (jit, custom_jvp, scan) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        stack = list(eqn.params.values())
        while stack:
            v = stack.pop()
            if isinstance(v, (tuple, list)):
                stack += v
            elif hasattr(v, "eqns"):  # a Jaxpr
                found += _dot_precisions(v)
            elif hasattr(getattr(v, "jaxpr", None), "eqns"):  # a ClosedJaxpr
                found += _dot_precisions(v.jaxpr)
    return found


def test_matrix_products_are_full_precision_on_every_backend(problem):
    # GPUs multiply float32 matrices in TF32 unless asked not to: F(w) - F* near the optimum would drown
    # in it. Every product of the loss, the mini-batch gradient and the weighted gradient asks for HIGHEST.
    data = problem.data()
    w = nearby(problem, data)
    points, weights, key = nearby(problem, data, shape=(3,)), jnp.array([0.5, -1.0, 2.0]), jax.random.key(5)
    jaxprs = [jax.make_jaxpr(problem.loss)(data, w), jax.make_jaxpr(jax.grad(problem.loss, argnums=1))(data, w),
              jax.make_jaxpr(lambda p, wt, k: problem.weighted_grad(data, p, wt, k, 6))(points, weights, key)]
    precisions = [p for j in jaxprs for p in _dot_precisions(j.jaxpr)]
    assert precisions, "no matrix product found: the check would pass vacuously"
    highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
    assert all(p == highest for p in precisions), precisions


def test_f_star_is_the_minimum(problem):
    if isinstance(problem, MLP):
        assert problem.f_star is None and problem.f_star_source == "none"
        return
    assert problem.f_star_source == ("exact" if problem.task == "least_squares" else "solver")
    data = problem.data()
    solution = problem.solution()
    f_star = problem.f_star
    assert solution.f == f_star and solution.w.shape == (problem.dim,)
    assert solution.grad_max <= solver.ACCEPT
    w_star = jnp.asarray(solution.w, data["X"].dtype)
    loss, grad = value_and_grad(problem, data, w_star)
    assert float(jnp.max(jnp.abs(grad))) < 1e-5
    assert float(loss) == pytest.approx(f_star, rel=1e-5)
    tol = 1e-6 * max(1.0, abs(f_star))
    w_near = w_star + nearby(problem, data, 1e-2) - problem.init_params(data)
    for w in (problem.init_params(data), nearby(problem, data), w_near):
        assert float(value_and_grad(problem, data, w)[0]) >= f_star - tol


def test_full_batch_gd_approaches_f_star_from_above(problem):
    data = problem.data()
    w, losses = gradient_descent(problem, data, problem.init_params(data), step_size(problem), 2000)
    losses = np.asarray(losses, np.float64)
    assert np.all(np.isfinite(losses))
    assert np.all(np.diff(losses) <= 1e-6 * max(1.0, abs(losses[0])))  # GD with eta <= 1/L never goes up
    if problem.f_star is None:
        assert losses[-1] < 0.1 * losses[0]
    else:
        gaps = losses - problem.f_star
        assert np.all(gaps >= -1e-6 * max(1.0, abs(problem.f_star)))
        assert gaps[-1] <= 0.01 * gaps[0]
    if problem.has_test:
        ds = problem.host_data()
        chance = np.max(np.bincount(ds.y_test.astype(int))) / len(ds.y_test)
        before, after = float(problem.test_accuracy(data, problem.init_params(data))), float(problem.test_accuracy(data, w))
        assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0
        assert after >= chance + 0.1


def test_bundled_data_sets_and_default_f_star():
    lr, sr = LogisticRegression(), SoftmaxRegression()
    assert (lr.dim, lr.host_data().X.shape) == (31, (455, 31))
    assert (sr.dim, sr.host_data().X.shape, sr.host_data().classes) == (650, (1438, 65), 10)
    assert 0 < lr.f_star < np.log(2) and 0 < sr.f_star < np.log(10)
    assert sr.solution().grad_max <= solver.ACCEPT
    data = sr.data()
    assert float(sr.test_accuracy(data, jnp.asarray(sr.solution().w, data["X"].dtype))) > 0.9


def test_least_squares_data_and_exact_f_star(npz_dir):
    p = LeastSquares(n=500, dim=8, condition=100.0, noise=0.5)
    X = p.host_data().X
    np.testing.assert_allclose(np.linalg.eigvalsh(X.T @ X / p.n)[::-1], np.geomspace(1, 1e-2, 8), rtol=1e-10)
    # residual variance of least squares: noise^2 (n - dim) / n, up to sampling error
    assert p.f_star == pytest.approx(0.5 * 0.25 * (500 - 8) / 500, rel=0.2)
    # the same data through the .npz loader (no scaling, no bias, no l2) has the same F*
    same = Npz(path=str(npz_dir / "least_squares.npz"), task="least_squares", l2=0.0, standardize=False, bias=False)
    assert same.f_star == pytest.approx(LeastSquares(n=200, dim=5).f_star, rel=1e-10)


def test_float64_mode():
    p = LogisticRegression(dataset="synthetic", n=200, features=4)
    with jax.enable_x64(True):
        data = p.data()
        assert data["X"].dtype == jnp.float64
        w_star = jnp.asarray(p.solution().w)
        assert float(jnp.max(jnp.abs(jax.grad(p.loss, argnums=1)(data, w_star)))) < 1e-8
        assert float(p.loss(data, w_star)) == pytest.approx(p.f_star, rel=1e-12)


def test_f_star_disk_cache_is_used_the_second_time(cache_dir, monkeypatch):
    p = LogisticRegression(dataset="synthetic", n=100, features=3)
    glm.clear_caches()
    first = p.solution()
    files = sorted(os.listdir(cache_dir))
    assert len(files) == 1 and files[0].startswith("logistic_regression-") and files[0].endswith(".npz")

    def no_solver(*args, **kwargs):
        raise AssertionError("the solver ran although the cache holds the solution")

    monkeypatch.setattr(solver, "lbfgs", no_solver)
    glm.clear_caches()
    again = LogisticRegression(dataset="synthetic", n=100, features=3).solution()
    np.testing.assert_array_equal(again.w, first.w)
    assert again.f == first.f
    with pytest.raises(AssertionError, match="the solver ran"):  # a different problem is not served from it
        LogisticRegression(dataset="synthetic", n=100, features=3, l2=2e-3).solution()


def test_f_star_cache_is_written_atomically(cache_dir, monkeypatch):
    p = LogisticRegression(dataset="synthetic", n=100, features=3, seed=7)
    glm.clear_caches()
    real_replace, moves = os.replace, []

    def recording_replace(src, dst):
        assert not os.path.exists(dst) and os.path.getsize(src) > 0
        moves.append((os.path.dirname(src), os.path.dirname(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(solver.os, "replace", recording_replace)
    p.solution()
    assert moves == [(str(cache_dir), str(cache_dir))]  # a complete file, moved within one directory
    (path,) = cache_dir.iterdir()

    # a crash while writing leaves neither a partial entry nor a temporary file
    path.unlink()
    glm.clear_caches()

    def crashing_savez(fh, **arrays):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(solver.np, "savez", crashing_savez)
    with pytest.raises(KeyboardInterrupt):
        p.solution()
    assert list(cache_dir.iterdir()) == []


def test_damaged_cache_entry_is_recomputed(cache_dir):
    p = LogisticRegression(dataset="synthetic", n=100, features=3, seed=8)
    glm.clear_caches()
    first = p.solution()
    (path,) = cache_dir.iterdir()
    path.write_bytes(b"not an npz file")
    glm.clear_caches()
    assert p.solution().f == first.f
    assert np.load(path)["f"] == first.f


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


X5 = np.random.default_rng(0).standard_normal((5, 2))
BAD_NPZ = {
    "missing y": ("logistic", {"X": X5}),
    "X not 2-d": ("logistic", {"X": X5[:, 0], "y": np.zeros(5)}),
    "y length": ("logistic", {"X": X5, "y": np.zeros(4)}),
    "y not 1-d": ("logistic", {"X": X5, "y": np.zeros((5, 1))}),
    "NaN in X": ("logistic", {"X": np.where(X5 > 1, np.nan, X5), "y": np.zeros(5)}),
    "inf in y": ("least_squares", {"X": X5, "y": np.array([0, 1, np.inf, 0, 1])}),
    "labels not 0/1": ("logistic", {"X": X5, "y": np.array([0, 1, 2, 0, 1])}),
    "fractional class": ("softmax", {"X": X5, "y": np.array([0, 1, 2.5, 0, 1])}),
    "negative class": ("softmax", {"X": X5, "y": np.array([0, 1, -1, 0, 1])}),
    "one class": ("softmax", {"X": X5, "y": np.zeros(5)}),
    "X_test alone": ("logistic", {"X": X5, "y": np.zeros(5), "X_test": X5}),
    "X_test width": ("logistic", {"X": X5, "y": np.zeros(5), "X_test": X5[:, :1], "y_test": np.zeros(5)}),
    "y_test length": ("logistic", {"X": X5, "y": np.zeros(5), "X_test": X5, "y_test": np.zeros(3)}),
    "text labels": ("logistic", {"X": X5, "y": np.array(list("abcde"))}),
    "no examples": ("least_squares", {"X": np.zeros((0, 2)), "y": np.zeros(0)}),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_npz_bad_inputs_raise_config_error_naming_path(case, tmp_path):
    task, arrays = BAD_NPZ[case]
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConfigError, match=r"problem\.path"):
        Npz(path=path, task=task)


def test_npz_missing_unreadable_and_unset_path(tmp_path):
    with pytest.raises(ConfigError, match=r"problem\.path.*no such file"):
        Npz(path=str(tmp_path / "absent.npz"))
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(ConfigError, match=r"problem\.path.*cannot be read"):
        Npz(path=str(tmp_path / "junk.npz"))
    with pytest.raises(ConfigError, match=r"problem\.path"):
        make("npz")


def test_npz_equality_includes_the_file_content(tmp_path):
    y = np.array([0, 1, 0, 1, 1])
    path = _write_npz(tmp_path / "d.npz", X=X5, y=y)
    a, b = Npz(path=path), Npz(path=path)
    assert a == b and hash(a) == hash(b) and a.params() == {**b.params()}
    assert make("npz", **a.params()) == a
    _write_npz(tmp_path / "d.npz", X=X5 + 1, y=y)
    c = Npz(path=path)
    assert c != a and c.path == a.path
    with pytest.raises(ConfigError, match="changed"):
        a.host_data()


@pytest.mark.parametrize(
    "cls, kwargs, field",
    [
        (LeastSquares, {"n": 5, "dim": 10}, "problem.n"),
        (LeastSquares, {"condition": 0.5}, "problem.condition"),
        (LeastSquares, {"noise": -1}, "problem.noise"),
        (LogisticRegression, {"dataset": "digits"}, "problem.dataset"),
        (LogisticRegression, {"n": 100}, "problem.n"),
        (LogisticRegression, {"l2": 0.0}, "problem.l2"),
        (LogisticRegression, {"test_fraction": 1.0}, "problem.test_fraction"),
        (SoftmaxRegression, {"dataset": "synthetic", "classes": 1}, "problem.classes"),
        (SoftmaxRegression, {"classes": 3}, "problem.classes"),
        (MLP, {"activation": "sigmoid"}, "problem.activation"),
        (MLP, {"hidden": 0}, "problem.hidden"),
        (Npz, {"path": "x.npz", "task": "poisson"}, "problem.task"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(cls, kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        cls(**kwargs)


def test_problems_are_hashable_static_arguments_with_cached_data():
    a, b = (
        LogisticRegression(dataset="synthetic", n=300, features=5),
        make("logistic_regression", dataset="synthetic", n=300, features=5),
    )
    assert a == b and hash(a) == hash(b) and len({a, b, LogisticRegression()}) == 2
    assert a != LogisticRegression(dataset="synthetic", n=300, features=5, seed=1)
    assert make("logistic_regression", **a.params()) == a
    assert a.data() is b.data()  # computed once for equal problems
    f = jax.jit(lambda p, d, w: p.loss(d, w), static_argnums=0)
    w = a.init_params(a.data())
    assert float(f(a, a.data(), w)) == float(f(b, b.data(), w)) == pytest.approx(np.log(2))
    assert f._cache_size() == 1


def test_padded_quadratic_is_the_quadratic_on_its_own_coordinates():
    """NoisyQuadratic.padded(width): extra coordinates of curvature 0 that start at 0 and get a zero
    gradient; the loss, error and the gradient on the problem's own coordinates are the base's, bit
    for bit, with a threefry key (JAX's default, whose draws a longer draw extends)."""
    base = NoisyQuadratic(dim=10, sigma2=2.0, init=0.7)
    pad = base.padded(16)
    assert pad.dim == 16 and pad.active_dim == 10 and pad.f_star == base.f_star
    data, bdata = pad.data(), base.data()
    w0 = pad.init_params(data)
    np.testing.assert_array_equal(w0[:10], base.init_params(bdata))
    np.testing.assert_array_equal(w0[10:], 0)
    w = w0.at[:10].set(jnp.linspace(-1.0, 1.0, 10))
    assert pad.loss(data, w) == base.loss(bdata, w[:10]) and pad.error(data, w) == base.error(bdata, w[:10])
    key = jax.random.key(5)
    points = jnp.stack([w, 0.5 * w, -w])
    weights = jnp.array([1.0, 0.5, 0.25])
    g = pad.weighted_grad(data, points, weights, key, 4)
    np.testing.assert_array_equal(g[:10], base.weighted_grad(bdata, points[:, :10], weights, key, 4))
    np.testing.assert_array_equal(g[10:], 0)
    assert np.all(np.asarray(g[:10]) != 0)
    with pytest.raises(ConfigError, match="width"):
        base.padded(8)


@pytest.mark.parametrize("K", [3, UNROLL_K, UNROLL_K + 1])
def test_noisy_quadratic_weighted_grad_for_any_K(K):
    # K <= UNROLL_K sums the points in an unrolled loop, more K through a product: both are
    # data * sum_l a_l w_l + sqrt(sum_l a_l^2 sigma2 / m) sqrt(data) eps, the product at full precision
    prob = NoisyQuadratic(dim=20, sigma2=3.0)
    data = prob.data()
    rng = np.random.default_rng(K)
    points = rng.normal(size=(K, 20)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, size=K).astype(np.float32)
    key = jax.random.key(K)
    got = np.asarray(prob.weighted_grad(data, jnp.asarray(points), jnp.asarray(weights), key, 4), np.float64)
    eps = np.asarray(jax.random.normal(key, (20,), jnp.float32), np.float64)
    h, a, p = np.asarray(data, np.float64), weights.astype(np.float64), points.astype(np.float64)
    want = h * (a @ p) + np.sqrt(np.sum(a**2) * 3.0 / 4) * np.sqrt(h) * eps
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())
    jaxpr = jax.make_jaxpr(lambda pt, wt: prob.weighted_grad(data, pt, wt, key, 4))(jnp.asarray(points), jnp.asarray(weights))
    precisions = _dot_precisions(jaxpr.jaxpr)
    assert len(precisions) == (1 if K > UNROLL_K else 0)
    assert all(p == (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST) for p in precisions), precisions
