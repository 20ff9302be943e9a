"""Binary logistic regression (breast cancer or synthetic data), l2-regularised: F* by the solver."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .glm import ClassificationGLM


@dataclasses.dataclass(frozen=True)
class LogisticRegression(ClassificationGLM):
    """F(w) = mean_i [log(1 + exp(z_i)) - y_i z_i] + l2/2 ||w||^2, z_i = x_i . w, y_i in {0, 1}.

    dataset: 'breast_cancer' (scikit-learn's bundled copy: 569 examples, 30 features) or
    'synthetic' (n examples, `features` Gaussian features, labels drawn from a logistic model).
    dim = features + 1 (bias).
    """

    dataset: str = "breast_cancer"
    name: ClassVar[str] = "logistic_regression"
    task: ClassVar[str] = "logistic"
    DATASETS: ClassVar[tuple[str, ...]] = ("breast_cancer", "synthetic")
