"""Problems with a known optimum (SPEC §6): a registry by snake_case name."""

from __future__ import annotations

from ..errors import registered
from .base import Problem
from .least_squares import LeastSquares
from .logistic_regression import LogisticRegression
from .mlp import MLP
from .noisy_quadratic import NoisyQuadratic
from .npz import Npz
from .softmax_regression import SoftmaxRegression

PROBLEMS: dict[str, type[Problem]] = {
    cls.name: cls for cls in (NoisyQuadratic, LeastSquares, LogisticRegression, SoftmaxRegression, MLP, Npz)
}


def make(name: str, **params) -> Problem:
    """Build a problem by its snake_case name, e.g. make('noisy_quadratic', dim=100)."""
    cls = registered("problem", PROBLEMS, name, params)
    return cls(**params)


__all__ = [
    "Problem",
    "NoisyQuadratic",
    "LeastSquares",
    "LogisticRegression",
    "SoftmaxRegression",
    "MLP",
    "Npz",
    "PROBLEMS",
    "make",
]
