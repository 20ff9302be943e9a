"""Multiclass softmax regression (digits or synthetic data), l2-regularised: F* by the solver."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .glm import ClassificationGLM


@dataclasses.dataclass(frozen=True)
class SoftmaxRegression(ClassificationGLM):
    """F(w) = mean_i [logsumexp(z_i) - z_{i, y_i}] + l2/2 ||w||^2, z_i = x_i W, W = w.reshape(d, C).

    dataset: 'digits' (scikit-learn's bundled 8x8 digits: 1797 examples, 64 features, 10 classes),
    'breast_cancer' (2 classes) or 'synthetic' (n examples, `features` Gaussian features, `classes`
    classes drawn from a softmax model). dim = (features + 1) * classes.
    """

    dataset: str = "digits"
    classes: int | None = None
    name: ClassVar[str] = "softmax_regression"
    task: ClassVar[str] = "softmax"
    DATASETS: ClassVar[tuple[str, ...]] = ("digits", "breast_cancer", "synthetic")
    SYNTHETIC: ClassVar[dict[str, tuple[int, int]]] = {**ClassificationGLM.SYNTHETIC, "classes": (5, 2)}

    def _synthetic_classes(self) -> int:
        return self.classes
