"""What the real-data problems share: cached data sets, mini-batch gradients and test accuracy
(`DataProblem`), and generalised linear models (least squares, logistic, softmax) with their F*
(`GLMProblem`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from ..errors import ConfigError, positive, positive_int, require, unknown
from . import solver
from .base import Problem, matmul
from .datasets import Dataset, load_builtin, prepare, synthetic_classification

#: The generalised linear models: the loss of a linear prediction z = x . w.
TASKS = ("least_squares", "logistic", "softmax")


# --- losses of linear predictions (numpy for the float64 solver, jax.numpy for the engine) ---------
def example_losses(task: str, Z, y, xp=jnp):
    """Per-example losses, shape (n,), of predictions Z: (n,) for least_squares and logistic (y real
    or in {0, 1}), (n, C) logits for softmax (y integer labels). `xp` is numpy or jax.numpy."""
    if task == "least_squares":
        return 0.5 * (Z - y) ** 2
    if task == "logistic":
        return xp.logaddexp(0.0, Z) - y * Z
    logsumexp = scipy.special.logsumexp if xp is np else jax.nn.logsumexp
    return logsumexp(Z, axis=1) - xp.take_along_axis(Z, y[:, None], axis=1)[:, 0]


def value_and_grad(task: str, w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """F(w) = mean example loss + l2/2 ||w||^2 and its analytic gradient, in float64 numpy."""
    Z = X @ w.reshape(X.shape[1], -1) if task == "softmax" else X @ w
    if task == "least_squares":
        residual = Z - y
    elif task == "logistic":
        residual = scipy.special.expit(Z) - y
    else:
        residual = scipy.special.softmax(Z, axis=1)
        residual[np.arange(len(y)), y] -= 1.0
    value = np.mean(example_losses(task, Z, y, np)) + 0.5 * l2 * (w @ w)
    return float(value), (X.T @ residual).ravel() / len(y) + l2 * w


def least_squares_solution(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """argmin 1/(2n) ||Xw - y||^2 + l2/2 ||w||^2, by lstsq on the (ridge-augmented) system."""
    if l2 > 0:
        X = np.vstack([X, math.sqrt(l2 * len(y)) * np.eye(X.shape[1])])
        y = np.concatenate([y, np.zeros(X.shape[1])])
    return np.linalg.lstsq(X, y, rcond=None)[0]


# --- host data, device data and solutions, each computed once per (equal) problem ----------------
@functools.lru_cache(maxsize=64)
def _host_data(problem: DataProblem) -> Dataset:
    return problem._load()


@functools.lru_cache(maxsize=64)
def _device_data(problem: DataProblem, dtype: np.dtype) -> dict[str, jax.Array]:
    def put(a):
        return jnp.asarray(a, dtype if np.issubdtype(a.dtype, np.floating) else jnp.int32)

    ds = problem.host_data()
    with jax.ensure_compile_time_eval():  # concrete arrays even when first asked for under a trace
        out = {"X": put(ds.X), "y": put(ds.y)}
        if ds.X_test is not None:
            out |= {"X_test": put(ds.X_test), "y_test": put(ds.y_test)}
    return out


@functools.lru_cache(maxsize=64)
def _solution(problem: GLMProblem) -> solver.Solution:
    return problem._solve()


def clear_caches() -> None:
    """Forget the in-memory data sets and solutions (the disk cache of F* stays)."""
    for cache in (_host_data, _device_data, _solution):
        cache.cache_clear()


def float_dtype() -> np.dtype:
    """The default float dtype: float32, or float64 where jax_enable_x64 is on."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


# --- validation helpers for the settings of the real-data problems -------------------------------
def nonnegative(field: str, value: object) -> float:
    """`value` as a finite float >= 0."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{field}={value!r} is invalid: must be a finite number >= 0.") from None
    require(math.isfinite(v) and v >= 0, field, value, "must be a finite number >= 0")
    return v


def fraction(field: str, value: object) -> float:
    """`value` as a float in (0, 1)."""
    v = positive(field, value)
    require(v < 1, field, value, "must be a number in (0, 1)")
    return v


def flag(field: str, value: object) -> bool:
    """`value` checked to be a bool."""
    require(isinstance(value, (bool, np.bool_)), field, value, "must be true or false")
    return bool(value)


def choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    """`value` checked to be one of `allowed`."""
    if value not in allowed:
        raise unknown(field, value, allowed)
    return str(value)


def set_field(problem, field: str, value) -> None:
    """Set a field of a frozen dataclass (in __post_init__, to its validated value)."""
    object.__setattr__(problem, field, value)


# --- problems --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DataProblem(Problem):
    """A problem on a fixed training set: F(w) = objective(w, X, y) over all n examples; a mini-batch
    gradient is jax.grad of the objective on `batch_size` examples drawn uniformly with replacement.

    Subclasses provide `_load` (the host Dataset), `objective` and `predict`. `data()` is
    {'X': (n, d), 'y': (n,)} plus 'X_test', 'y_test' where there is a test split; features in the
    default float dtype, class labels int32.
    """

    def _load(self) -> Dataset:
        raise NotImplementedError

    def objective(self, w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
        """Mean example loss over (X, y) plus the regulariser, a scalar."""
        raise NotImplementedError

    def predict(self, w: jax.Array, X: jax.Array) -> jax.Array:
        """Predicted class labels, shape (n,)."""
        raise NotImplementedError

    def host_data(self) -> Dataset:
        """The host (float64 numpy) data set, built once per equal problem."""
        return _host_data(self)

    def data(self):
        return _device_data(self, float_dtype())

    def loss(self, data, w):
        return self.objective(w, data["X"], data["y"])

    def grad(self, data, w, key, batch_size):
        idx = jax.random.randint(key, (batch_size,), 0, data["X"].shape[0])
        return jax.grad(self.objective)(w, data["X"][idx], data["y"][idx])

    def test_accuracy(self, data, w):
        return jnp.mean(self.predict(w, data["X_test"]) == data["y_test"]).astype(w.dtype)

    def params(self) -> dict:
        # only the user's settings (not derived fields such as a file's content hash)
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}


@dataclasses.dataclass(frozen=True)
class GLMProblem(DataProblem):
    """F(w) = mean_i loss(x_i . W, y_i) + l2/2 ||w||^2 for a task of TASKS; w_0 = 0.

    For softmax, W = w.reshape(d, C) (row-major) for d features and C classes; otherwise W = w.
    F* is exact for least squares (lstsq) and from a converged float64 L-BFGS solve otherwise,
    cached on disk (see `solver`). Subclasses provide `task` and `l2` (fields or class
    attributes) and `_load`.
    """

    @property
    def dim(self) -> int:
        ds = self.host_data()
        return ds.X.shape[1] * (ds.classes if self.task == "softmax" else 1)

    def init_params(self, data):
        return jnp.zeros(self.dim, data["X"].dtype)

    def _predictions(self, w, X):
        return matmul(X, w.reshape(X.shape[1], -1)) if self.task == "softmax" else matmul(X, w)

    def objective(self, w, X, y):
        return jnp.mean(example_losses(self.task, self._predictions(w, X), y)) + 0.5 * self.l2 * matmul(w, w)

    def predict(self, w, X):
        Z = self._predictions(w, X)
        return jnp.argmax(Z, axis=1) if self.task == "softmax" else (Z > 0).astype(jnp.int32)

    def solution(self) -> solver.Solution:
        """w* (float64, shape (dim,)), F* = F(w*) and the largest gradient component at w*."""
        return _solution(self)

    def _solve(self) -> solver.Solution:
        ds = self.host_data()

        def fun(w):
            return value_and_grad(self.task, w, ds.X, ds.y, self.l2)

        if self.task == "least_squares":
            w = least_squares_solution(ds.X, ds.y, self.l2)
            f, g = fun(w)
            return solver.Solution(w, f, float(np.max(np.abs(g))))
        return solver.cached(self, (ds.X, ds.y), lambda: solver.lbfgs(fun, np.zeros(self.dim)))

    @property
    def f_star(self) -> float:
        return self.solution().f

    @property
    def f_star_source(self) -> str:
        return "exact" if self.task == "least_squares" else "solver"


@dataclasses.dataclass(frozen=True)
class ClassificationGLM(GLMProblem):
    """Logistic or softmax regression on a bundled scikit-learn data set or a synthetic one.

    `n` (total examples before the split) and `features` (and `classes`) apply only to
    dataset='synthetic' and are None otherwise. A `test_fraction` of the examples (split with
    `seed`) is held out; features are standardized with the training statistics; a constant bias
    feature is appended.
    """

    dataset: str = "synthetic"
    n: int | None = None
    features: int | None = None
    l2: float = 1e-3
    test_fraction: float = 0.2
    seed: int = 0
    has_test: ClassVar[bool] = True
    DATASETS: ClassVar[tuple[str, ...]] = ()
    #: defaults and minima of the settings that only apply to dataset='synthetic'
    SYNTHETIC: ClassVar[dict[str, tuple[int, int]]] = {"n": (1000, 2), "features": (20, 1)}

    def __post_init__(self):
        synthetic = choice("problem.dataset", self.dataset, self.DATASETS) == "synthetic"
        for field, (default, minimum) in self.SYNTHETIC.items():
            value = getattr(self, field)
            if synthetic:
                set_field(self, field, positive_int(f"problem.{field}", default if value is None else value, minimum))
            else:
                require(value is None, f"problem.{field}", value, "applies only to problem.dataset='synthetic'")
        set_field(self, "l2", positive("problem.l2", self.l2))
        set_field(self, "test_fraction", fraction("problem.test_fraction", self.test_fraction))
        set_field(self, "seed", positive_int("problem.seed", self.seed, minimum=0))
        if synthetic:
            n_train = self.n - max(1, round(self.test_fraction * self.n))
            require(n_train >= 1, "problem.n", self.n, f"leaves no training example with test_fraction={self.test_fraction}")

    def _synthetic_classes(self) -> int:
        return 2

    def _load(self) -> Dataset:
        if self.dataset == "synthetic":
            classes = self._synthetic_classes()
            X, y = synthetic_classification(self.n, self.features, classes, self.seed)
        else:
            X, y, classes = load_builtin(self.dataset)
        y = y.astype(np.float64) if self.task == "logistic" else y
        return prepare(X, y, classes, test_fraction=self.test_fraction, seed=self.seed)
