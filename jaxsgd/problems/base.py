"""The problem interface the engine optimises: a flat parameter vector, a loss with known F*, and
stochastic mini-batch gradients drawn from a key."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b in the arrays' full precision on every backend. GPUs otherwise multiply float32 matrices
    in TF32 (a 10-bit mantissa): errors near 1e-3 of the logits, which swamp F(w) - F* near the
    optimum (seen on an H100: the gradient at the optimum 4e-5 instead of 1e-6)."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Base class of every problem.

    Subclasses are frozen dataclasses whose fields are the problem's (hashable) settings, so a
    problem can be a static argument of a jitted function. Arrays (data sets, curvatures) live in
    `data()`, a pytree passed to the jitted engine as a traced argument. Parameters are one flat
    vector of length `dim`.
    """

    name: ClassVar[str] = ""

    # --- what subclasses provide ------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of parameters."""
        raise NotImplementedError

    def data(self) -> Any:
        """Pytree of arrays the other methods read (computed once and cached by subclasses)."""
        raise NotImplementedError

    def init_params(self, data) -> jax.Array:
        """w_0, shape (dim,)."""
        raise NotImplementedError

    def loss(self, data, w: jax.Array) -> jax.Array:
        """The full objective F(w) (training loss), a scalar."""
        raise NotImplementedError

    def grad(self, data, w: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
        """One worker's stochastic gradient at w from a mini-batch of `batch_size`, shape (dim,)."""
        raise NotImplementedError

    @property
    def f_star(self) -> float | None:
        """F* = min F, or None where it is not known (then errors are losses)."""
        return None

    @property
    def f_star_source(self) -> str:
        """How F* is known: 'exact', 'solver' (a converged full-batch solver) or 'none'."""
        return "none"

    has_test: ClassVar[bool] = False

    def test_accuracy(self, data, w: jax.Array) -> jax.Array:
        """Accuracy on the test split (only where has_test)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def weighted_grad(self, data, points: jax.Array, weights: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
        """sum_l weights[l] * g(points[l], xi_l) over K gradients, each with its own mini-batch.

        points: (K, dim), weights: (K,). Problems with exact Gaussian noise may override this with a
        cheaper draw of the same distribution.
        """
        K = points.shape[0]
        keys = jax.vmap(lambda l: jax.random.fold_in(key, l))(jnp.arange(K, dtype=jnp.uint32))
        grads = jax.vmap(lambda w, k: self.grad(data, w, k, batch_size))(points, keys)
        return matmul(weights.astype(grads.dtype), grads)

    # --- optional: a padded view the engine may run instead ------------------------------------
    def padded(self, width: int) -> Problem | None:
        """The same problem on a parameter vector padded to `width` > dim coordinates that start at 0,
        never move and never count, drawing the same random numbers for its own coordinates (with
        JAX's default threefry keys), or None where it has no such view (the default). The engine
        runs it where a loop over `width` coordinates vectorises better than one over dim."""
        return None

    @property
    def active_dim(self) -> int:
        """The leading coordinates that count: dim, except in a padded view."""
        return self.dim

    def error(self, data, w: jax.Array) -> jax.Array:
        """F(w) - F* (or F(w) where F* is unknown)."""
        fs = self.f_star
        return self.loss(data, w) - (0.0 if fs is None else fs)

    def params(self) -> dict:
        """Settings as plain values (for tables and JSON)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
