"""Host-side data sets for the real-data problems: loading, synthetic generation, split, scaling."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Data sets bundled with scikit-learn (no network), by name.
BUILTIN = ("breast_cancer", "digits")


class Dataset(NamedTuple):
    """A training set and an optional held-out test set, as float64 / int64 numpy arrays."""

    X: np.ndarray  #: (n, d) training features
    y: np.ndarray  #: (n,) targets (float64) or class labels (int64)
    X_test: np.ndarray | None  #: (n_test, d) or None
    y_test: np.ndarray | None  #: (n_test,) or None
    classes: int  #: number of classes (0 for regression)


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(X, y, classes) of a scikit-learn bundled data set: X (n, d) float64, y (n,) int64."""
    from sklearn import datasets

    bunch = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), len(bunch.target_names)


def synthetic_classification(n: int, features: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): X ~ N(0, I) (n, features); y ~ softmax(X W) with W ~ N(0, 4/features) (features, classes).

    Logits have standard deviation about 2, so the classes overlap (the Bayes accuracy is below 1).
    """
    rng = np.random.default_rng([seed, 0])
    X = rng.standard_normal((n, features))
    W = rng.standard_normal((features, classes)) * (2.0 / np.sqrt(features))
    logits = X @ W
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return X, np.minimum(y, classes - 1).astype(np.int64)


def prepare(
    X: np.ndarray,
    y: np.ndarray,
    classes: int,
    *,
    test_fraction: float = 0.0,
    seed: int = 0,
    standardize: bool = True,
    bias: bool = True,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Dataset:
    """Split off a random test set (when test_fraction > 0 and none is given), standardize the
    features with the training mean and std (constant features are only centred), and append a
    constant bias feature."""
    if X_test is None and test_fraction > 0:
        order = np.random.default_rng([seed, 1]).permutation(len(X))
        n_test = max(1, int(round(test_fraction * len(X))))
        test, train = order[:n_test], order[n_test:]
        X, y, X_test, y_test = X[train], y[train], X[test], y[test]
    if standardize:
        mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        X = (X - mean) / std
        X_test = None if X_test is None else (X_test - mean) / std
    if bias:
        X = np.hstack([X, np.ones((len(X), 1))])
        X_test = None if X_test is None else np.hstack([X_test, np.ones((len(X_test), 1))])
    return Dataset(X, y, X_test, y_test, classes)
