"""The noisy quadratic model (SPEC §6): the reference problem, with exact noise and F* = 0."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import positive, positive_int, require
from .base import Problem, matmul

#: up to this many gradients per update the weighted sum of the K points is unrolled into the gradient's
#: elementwise loop: a separate product gathers the points element by element on CPU. The engine's
#: benchmark scaling (1,024 replicas x 300 updates, k_async): 9.5 -> 4.7 us per trajectory-update at
#: P = 128, K = 32 and 18.6 -> 13.2 at P = 256, K = 64, against a threshold of 16 (compile 3.7 -> 4.8 s
#: at K = 64)
UNROLL_K = 64


@dataclasses.dataclass(frozen=True)
class NoisyQuadratic(Problem):
    """F(w) = 1/2 sum_i h_i (w_i - w*_i)^2 with h log-spaced from h_max down to h_min.

    A mini-batch gradient is h * (w - w*) + sqrt(sigma2 * h / m) * eps, eps ~ N(0, I). Parameters
    are stored as the error e = w - w* (w* = 0), w_0 - w* = init * ones; F* = 0 exactly.
    """

    dim: int = 100
    h_max: float = 1.0
    h_min: float = 0.01
    sigma2: float = 1.0
    init: float = 1.0
    name: ClassVar[str] = "noisy_quadratic"

    def __post_init__(self):
        object.__setattr__(self, "dim", positive_int("problem.dim", self.dim))
        object.__setattr__(self, "h_max", positive("problem.h_max", self.h_max))
        object.__setattr__(self, "h_min", positive("problem.h_min", self.h_min))
        require(self.h_min <= self.h_max, "problem.h_min", self.h_min, f"must be <= problem.h_max={self.h_max}")
        sigma2 = float(self.sigma2)
        require(math.isfinite(sigma2) and sigma2 >= 0, "problem.sigma2", self.sigma2, "must be a finite number >= 0")
        object.__setattr__(self, "sigma2", sigma2)
        init = float(self.init)
        require(math.isfinite(init), "problem.init", self.init, "must be a finite number")
        object.__setattr__(self, "init", init)

    def curvatures(self) -> np.ndarray:
        """h, shape (dim,), log-spaced from h_max down to h_min (float64)."""
        return np.geomspace(self.h_max, self.h_min, self.dim)

    def data(self):
        return jnp.asarray(self.curvatures(), jnp.zeros(()).dtype)

    def init_params(self, data):
        return jnp.full(self.dim, self.init, data.dtype)

    def loss(self, data, w):
        return 0.5 * jnp.sum(data * w * w)

    def grad(self, data, w, key, batch_size):
        eps = jax.random.normal(key, w.shape, w.dtype)
        return data * w + jnp.sqrt(self.sigma2 * data / batch_size) * eps

    def weighted_grad(self, data, points, weights, key, batch_size):
        # sum_l a_l eps_l with independent eps_l ~ N(0, I) has the law of sqrt(sum_l a_l^2) * eps:
        # one normal vector per update instead of K, with exactly the same distribution.
        weights = weights.astype(points.dtype)
        eps = jax.random.normal(key, points.shape[1:], points.dtype)
        noise_scale = jnp.sqrt(jnp.sum(weights**2) * self.sigma2 / batch_size)
        K = points.shape[0]
        if K <= UNROLL_K:  # unrolled: one elementwise loop with the gather and the noise (a reduce would not fuse on CPU)
            combined = weights[0] * points[0]
            for l in range(1, K):
                combined = combined + weights[l] * points[l]
        else:
            combined = matmul(weights, points)
        return data * combined + noise_scale * jnp.sqrt(data) * eps

    def padded(self, width: int) -> PaddedQuadratic:
        return PaddedQuadratic(self, width)

    @property
    def f_star(self):
        return 0.0

    @property
    def f_star_source(self):
        return "exact"

    def expected_error(self, eta: float, K: int, batch_size: int, updates: np.ndarray) -> np.ndarray:
        """E[F(w_j)] of staleness-free SGD (k_sync, k_batch_sync) from the exact recursion of SPEC §6.

        E[e_{j+1,i}^2] = (1 - eta h_i)^2 E[e_{j,i}^2] + eta^2 sigma2 h_i / (K m); returns the value at
        each of `updates` (float64).
        """
        h = self.curvatures()
        a = (1.0 - eta * h) ** 2
        b = eta**2 * self.sigma2 * h / (K * batch_size)
        e0 = self.init**2
        j = np.asarray(updates, dtype=np.float64)[:, None]
        # closed form of the affine recursion x_{j+1} = a x_j + b
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fixed = np.where(a != 1.0, b / (1.0 - a), 0.0)
            second = np.where(a != 1.0, a**j * (e0 - fixed) + fixed, e0 + j * b)
        return 0.5 * np.sum(h * second, axis=1)


@dataclasses.dataclass(frozen=True)
class PaddedQuadratic(Problem):
    """`base` on a parameter vector of `width` coordinates: the base's, then coordinates of curvature 0
    that start at 0 and stay there (their gradient is 0 * w + 0 * eps). A draw of `width` normals
    from a threefry key (JAX's default: counter-based, partitionable) begins with the base's draw of
    dim, so the base's coordinates take the same values bit for bit; the loss and error are the
    base's, on its coordinates. The engine runs it on CPU, where XLA vectorises a loop over 100
    coordinates with a scalar remainder and one over 104 without (benchmarks/bench.py measures it)."""

    base: NoisyQuadratic
    width: int
    name: ClassVar[str] = "noisy_quadratic"

    def __post_init__(self):
        require(self.width >= self.base.dim, "width", self.width, f"must be >= problem.dim={self.base.dim}")

    @property
    def dim(self) -> int:
        return self.width

    @property
    def active_dim(self) -> int:
        return self.base.dim

    def _pad(self, x):
        return jnp.pad(x, (0, self.width - self.base.dim))

    def data(self):
        return self._pad(self.base.data())

    def init_params(self, data):
        return self._pad(self.base.init_params(data[: self.base.dim]))

    def loss(self, data, w):
        n = self.base.dim
        return self.base.loss(data[:n], w[:n])

    def grad(self, data, w, key, batch_size):
        return self.base.grad(data, w, key, batch_size)

    def weighted_grad(self, data, points, weights, key, batch_size):
        return self.base.weighted_grad(data, points, weights, key, batch_size)

    @property
    def f_star(self):
        return self.base.f_star

    @property
    def f_star_source(self):
        return self.base.f_star_source

    def params(self) -> dict:
        return self.base.params()
