"""Synthetic least squares with a prescribed condition number: F* exact (lstsq)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from ..errors import positive, positive_int, require
from .datasets import Dataset
from .glm import GLMProblem, nonnegative, set_field


@dataclasses.dataclass(frozen=True)
class LeastSquares(GLMProblem):
    """F(w) = 1/(2n) ||X w - y||^2 with y = X w_true + noise * eps, w_0 = 0, F* exact.

    X (n, dim) is built so that X^T X / n has eigenvalues log-spaced from 1 down to 1/condition
    (exactly): F is 1-smooth and (1/condition)-strongly convex. w_true ~ N(0, I); all from `seed`.
    """

    n: int = 1000
    dim: int = 20
    condition: float = 10.0
    noise: float = 0.1
    seed: int = 0
    name: ClassVar[str] = "least_squares"
    task: ClassVar[str] = "least_squares"
    l2: ClassVar[float] = 0.0

    def __post_init__(self):
        set_field(self, "n", positive_int("problem.n", self.n))
        set_field(self, "dim", positive_int("problem.dim", self.dim))
        require(self.n >= self.dim, "problem.n", self.n, f"must be >= problem.dim={self.dim}")
        set_field(self, "condition", positive("problem.condition", self.condition))
        require(self.condition >= 1, "problem.condition", self.condition, "must be a number >= 1")
        set_field(self, "noise", nonnegative("problem.noise", self.noise))
        set_field(self, "seed", positive_int("problem.seed", self.seed, minimum=0))

    def _load(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        U = np.linalg.qr(rng.standard_normal((self.n, self.dim)))[0]  # orthonormal columns
        V = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))[0]
        eigenvalues = np.geomspace(1.0, 1.0 / self.condition, self.dim)
        X = (U * np.sqrt(self.n * eigenvalues)) @ V.T
        y = X @ rng.standard_normal(self.dim) + self.noise * rng.standard_normal(self.n)
        return Dataset(X, y, None, None, 0)
