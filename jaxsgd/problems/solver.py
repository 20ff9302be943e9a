"""F* by a converged float64 full-batch solver, cached on disk (keyed by the problem and its data)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.optimize

#: Environment variable naming the cache directory (default ~/.cache/jaxsgd).
CACHE_ENV = "JAXSGD_CACHE_DIR"
#: Bump to invalidate cached solutions when the solver or the objectives change.
VERSION = 1
#: L-BFGS-B stopping tolerance on the largest gradient component.
GTOL = 1e-10
#: A solution whose largest gradient component exceeds this is not accepted as converged.
ACCEPT = 1e-7


class Solution(NamedTuple):
    """A minimiser of F (float64) and what is known about it."""

    w: np.ndarray  #: (dim,) the minimiser w*
    f: float  #: F* = F(w*)
    grad_max: float  #: max_i |dF/dw_i(w*)|


def cache_dir() -> Path:
    """$JAXSGD_CACHE_DIR, or ~/.cache/jaxsgd."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "jaxsgd").expanduser()


def lbfgs(value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray) -> Solution:
    """Minimise a smooth convex function with L-BFGS-B in float64 from x0 (gtol 1e-10).

    Raises RuntimeError when the gradient at the result is not below ACCEPT.
    """
    res = scipy.optimize.minimize(
        value_and_grad,
        np.asarray(x0, np.float64),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": GTOL, "ftol": 0.0, "maxiter": 100_000, "maxfun": 200_000, "maxcor": 30},
    )
    f, g = value_and_grad(res.x)
    grad_max = float(np.max(np.abs(g)))
    if not grad_max <= ACCEPT:
        raise RuntimeError(f"the F* solver did not converge: max |grad| = {grad_max:.3g} ({res.message})")
    return Solution(res.x, float(f), grad_max)


def cache_key(problem, arrays: tuple[np.ndarray, ...]) -> str:
    """sha256 of the problem's class, its compared fields, the data and the solver version."""
    digest = hashlib.sha256()
    fields = {f.name: getattr(problem, f.name) for f in dataclasses.fields(problem) if f.compare}
    digest.update(json.dumps([type(problem).__name__, fields, VERSION], sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def cached(problem, arrays: tuple[np.ndarray, ...], solve: Callable[[], Solution]) -> Solution:
    """The solution stored in the cache directory for (problem, arrays), else `solve()`, stored.

    The file is written to a temporary name in the same directory and moved into place with
    os.replace, so a reader never sees a partial file. An unreadable entry is recomputed; a cache
    directory that cannot be written only costs a warning.
    """
    key = cache_key(problem, arrays)
    path = cache_dir() / f"{problem.name}-{key[:24]}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return Solution(np.array(z["w"], np.float64), float(z["f"]), float(z["grad_max"]))
    except Exception:  # missing or damaged: (re)compute and (over)write it
        pass
    solution = solve()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, key=key, w=solution.w, f=solution.f, grad_max=solution.grad_max)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write the F* cache {path}: {e}", RuntimeWarning, stacklevel=2)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return solution
