"""The user's own data from a .npz file, fitted by least squares, logistic or softmax regression."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from typing import ClassVar

import numpy as np

from ..errors import ConfigError, positive
from .datasets import Dataset, prepare
from .glm import TASKS, GLMProblem, choice, flag, nonnegative, set_field


def _bad(path: str, what: str) -> ConfigError:
    return ConfigError(f"problem.path={path!r} is invalid: {what}.")


def read_npz(path: str, task: str) -> tuple[str, dict[str, np.ndarray]]:
    """(sha1 of the file, its validated arrays X, y and optionally X_test, y_test) for `task`.

    Raises ConfigError naming problem.path for a missing or unreadable file, missing keys, wrong
    shapes or lengths, non-finite values, or labels that do not fit the task.
    """
    if not os.path.isfile(path):
        raise _bad(path, "no such file")
    try:
        with open(path, "rb") as fh:
            content = fh.read()
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as e:  # noqa: BLE001 - anything np.load raises means the same to the user
        raise _bad(path, f"cannot be read as a .npz archive ({type(e).__name__}: {e})") from None
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise _bad(path, f"missing key(s) {missing}; it has {sorted(arrays)} (needs X, y; optional X_test, y_test)")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise _bad(path, "X_test and y_test must be given together")
    kept = {k: arrays[k] for k in ("X", "y", "X_test", "y_test") if k in arrays}
    for k, a in kept.items():
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise _bad(path, f"{k} has dtype {a.dtype}; it must be real numbers")
        if not np.all(np.isfinite(a)):
            raise _bad(path, f"{k} contains NaN or infinite values")
    for X, y in (("X", "y"), ("X_test", "y_test")):
        if X not in kept:
            continue
        if kept[X].ndim != 2 or kept[X].shape[0] == 0 or kept[X].shape[1] == 0:
            raise _bad(path, f"{X} has shape {kept[X].shape}; it must be (n, d) with n, d >= 1")
        if kept[y].shape != (kept[X].shape[0],):
            raise _bad(path, f"{y} has shape {kept[y].shape}; it must be ({kept[X].shape[0]},) to match {X}")
    if "X_test" in kept and kept["X_test"].shape[1] != kept["X"].shape[1]:
        raise _bad(path, f"X_test has {kept['X_test'].shape[1]} features but X has {kept['X'].shape[1]}")
    labels = np.concatenate([kept["y"], kept.get("y_test", kept["y"][:0])]).astype(np.float64)
    if task == "logistic" and not np.all((labels == 0) | (labels == 1)):
        raise _bad(path, "task='logistic' needs labels y in {0, 1}")
    if task == "softmax" and not np.all((labels == np.round(labels)) & (labels >= 0)):
        raise _bad(path, "task='softmax' needs integer class labels y >= 0")
    if task == "softmax" and labels.max() < 1:
        raise _bad(path, "task='softmax' needs at least 2 classes")
    return hashlib.sha1(content).hexdigest(), kept


@dataclasses.dataclass(frozen=True)
class Npz(GLMProblem):
    """A generalised linear model of TASKS fitted to X (n, d), y (n,) read from a .npz file.

    Optional X_test, y_test give a test split (test accuracy for logistic and softmax). Features are
    standardized with the training statistics (`standardize`) and a bias feature appended (`bias`).
    F(w) = mean loss + l2/2 ||w||^2 (l2 > 0 required for logistic and softmax); F* is exact for
    least squares and from the solver otherwise. Equality and hashing include the sha1 of the file,
    so a problem never stands for two different contents.
    """

    path: str = ""
    task: str = "logistic"
    l2: float = 1e-3
    standardize: bool = True
    bias: bool = True
    sha1: str = dataclasses.field(default="", init=False, repr=False)
    name: ClassVar[str] = "npz"

    def __post_init__(self):
        if not self.path:
            raise ConfigError("problem.path is required: the .npz file with X (n, d) and y (n,).")
        set_field(self, "path", os.path.abspath(os.path.expanduser(os.fspath(self.path))))
        choice("problem.task", self.task, TASKS)
        if self.task == "least_squares":
            set_field(self, "l2", nonnegative("problem.l2", self.l2))
        else:
            set_field(self, "l2", positive("problem.l2", self.l2))
        set_field(self, "standardize", flag("problem.standardize", self.standardize))
        set_field(self, "bias", flag("problem.bias", self.bias))
        set_field(self, "sha1", read_npz(self.path, self.task)[0])

    @property
    def has_test(self) -> bool:  # type: ignore[override]
        return self.task != "least_squares" and self.host_data().X_test is not None

    def _load(self) -> Dataset:
        sha1, a = read_npz(self.path, self.task)
        if sha1 != self.sha1:
            raise _bad(self.path, "the file changed since the problem was made; make it again")
        label = np.int64 if self.task == "softmax" else np.float64
        y = a["y"].astype(label)
        X_test, y_test = (a["X_test"].astype(np.float64), a["y_test"].astype(label)) if "X_test" in a else (None, None)
        classes = {"least_squares": 0, "logistic": 2}.get(self.task)
        if classes is None:
            classes = int(max(y.max(), y.max() if y_test is None else y_test.max())) + 1
        return prepare(
            a["X"].astype(np.float64), y, classes, standardize=self.standardize, bias=self.bias, X_test=X_test, y_test=y_test
        )
