"""A one-hidden-layer network with softmax cross-entropy on digits: non-convex, F* unknown."""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import positive_int
from .base import matmul
from .datasets import Dataset, load_builtin, prepare
from .glm import DataProblem, choice, example_losses, fraction, nonnegative, set_field

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


@functools.lru_cache(maxsize=16)
def _unraveller(shapes: tuple[tuple[str, tuple[int, ...]], ...], dtype: np.dtype):
    """ravel_pytree's unravel for a dict of arrays of these shapes and dtype."""
    with jax.ensure_compile_time_eval():
        return ravel_pytree({k: np.zeros(s, dtype) for k, s in shapes})[1]


@dataclasses.dataclass(frozen=True)
class MLP(DataProblem):
    """logits = act(x W1 + b1) W2 + b2; F(w) = mean cross-entropy + l2/2 ||w||^2 over the training set.

    dataset 'digits' (or 'breast_cancer'), standardized with the training statistics; a
    `test_fraction` held out (split with `seed`). w is the ravel_pytree of {W1 (d, hidden),
    W2 (hidden, C), b1, b2}; w_0 has LeCun-normal weights and zero biases, drawn from `seed`.
    F* is unknown, so errors are losses.
    """

    dataset: str = "digits"
    hidden: int = 32
    activation: str = "tanh"
    l2: float = 1e-4
    test_fraction: float = 0.2
    seed: int = 0
    name: ClassVar[str] = "mlp"
    has_test: ClassVar[bool] = True

    def __post_init__(self):
        choice("problem.dataset", self.dataset, ("digits", "breast_cancer"))
        set_field(self, "hidden", positive_int("problem.hidden", self.hidden))
        choice("problem.activation", self.activation, tuple(ACTIVATIONS))
        set_field(self, "l2", nonnegative("problem.l2", self.l2))
        set_field(self, "test_fraction", fraction("problem.test_fraction", self.test_fraction))
        set_field(self, "seed", positive_int("problem.seed", self.seed, minimum=0))

    def _load(self) -> Dataset:
        X, y, classes = load_builtin(self.dataset)
        return prepare(X, y, classes, test_fraction=self.test_fraction, seed=self.seed, bias=False)

    def _shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        ds = self.host_data()
        d, h, c = ds.X.shape[1], self.hidden, ds.classes
        return (("W1", (d, h)), ("b1", (h,)), ("W2", (h, c)), ("b2", (c,)))

    @property
    def dim(self) -> int:
        return sum(int(np.prod(s)) for _, s in self._shapes())

    def init_params(self, data):
        rng = np.random.default_rng([self.seed, 2])
        dtype = data["X"].dtype
        params = {k: rng.standard_normal(s) / np.sqrt(s[0]) if k.startswith("W") else np.zeros(s) for k, s in self._shapes()}
        with jax.ensure_compile_time_eval():
            return ravel_pytree({k: jnp.asarray(v, dtype) for k, v in params.items()})[0]

    def logits(self, w: jax.Array, X: jax.Array) -> jax.Array:
        """(n, C) logits of the examples X (n, d)."""
        p = _unraveller(self._shapes(), np.dtype(w.dtype))(w)
        return matmul(ACTIVATIONS[self.activation](matmul(X, p["W1"]) + p["b1"]), p["W2"]) + p["b2"]

    def objective(self, w, X, y):
        return jnp.mean(example_losses("softmax", self.logits(w, X), y)) + 0.5 * self.l2 * matmul(w, w)

    def predict(self, w, X):
        return jnp.argmax(self.logits(w, X), axis=1)
