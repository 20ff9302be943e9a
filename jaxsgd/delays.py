"""Delay laws: the random time a worker needs for one gradient (SPEC §7).

Each law samples in JAX (jit- and vmap-friendly) and knows its exact mean and cdf, which the
runtime theory integrates. Laws are frozen, hashable dataclasses validated when built, so they can
be static arguments of jitted functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from .errors import ConfigError, positive, registered, require, unknown

__all__ = [
    "DelayLaw",
    "Exponential",
    "ShiftedExponential",
    "Pareto",
    "LogNormal",
    "Weibull",
    "Gamma",
    "Uniform",
    "Constant",
    "Hyperexponential",
    "Trace",
    "LAWS",
    "make",
    "speeds",
    "SPEED_PATTERNS",
]


class DelayLaw:
    """Base class. Subclasses set `name` and implement `sample`, `mean` and `cdf`."""

    name: ClassVar[str] = ""

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        """Independent draws of the compute time, float32 array of `shape`."""
        raise NotImplementedError

    @property
    def mean(self) -> float:
        """E[X]."""
        return float(self.scipy().mean())

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        """P(X <= x), elementwise (NumPy)."""
        return self.scipy().cdf(np.asarray(x, dtype=np.float64))

    def sf(self, x: np.ndarray | float) -> np.ndarray:
        """P(X > x)."""
        return 1.0 - self.cdf(x)

    def scipy(self):  # pragma: no cover - overridden where a scipy law exists
        raise NotImplementedError(f"{type(self).__name__} has no scipy equivalent")

    @property
    def support_start(self) -> float:
        """A lower bound of the support (0 unless the law is shifted)."""
        return 0.0

    def params(self) -> dict:
        """Constructor parameters as plain Python values (for tables and JSON)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}({args})"


def _plain(v):
    if isinstance(v, tuple):
        return [float(x) for x in v]
    return v


@dataclasses.dataclass(frozen=True)
class Exponential(DelayLaw):
    """Exponential with `rate` (mean 1/rate)."""

    rate: float = 1.0
    name: ClassVar[str] = "exponential"

    def __post_init__(self):
        object.__setattr__(self, "rate", positive("delay.rate", self.rate))

    def sample(self, key, shape=()):
        return jax.random.exponential(key, shape) / self.rate

    def scipy(self):
        return stats.expon(scale=1.0 / self.rate)


@dataclasses.dataclass(frozen=True)
class ShiftedExponential(DelayLaw):
    """`shift` + Exponential(`rate`)."""

    shift: float = 1.0
    rate: float = 1.0
    name: ClassVar[str] = "shifted_exponential"

    def __post_init__(self):
        shift = float(self.shift)
        require(math.isfinite(shift) and shift >= 0, "delay.shift", self.shift, "must be a finite number >= 0")
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "rate", positive("delay.rate", self.rate))

    def sample(self, key, shape=()):
        return self.shift + jax.random.exponential(key, shape) / self.rate

    def scipy(self):
        return stats.expon(loc=self.shift, scale=1.0 / self.rate)

    @property
    def support_start(self):
        return self.shift


@dataclasses.dataclass(frozen=True)
class Pareto(DelayLaw):
    """Classic (type I) Pareto on [scale, inf); mean shape*scale/(shape-1) for shape > 1."""

    scale: float = 1.0
    shape: float = 3.0
    name: ClassVar[str] = "pareto"

    def __post_init__(self):
        object.__setattr__(self, "scale", positive("delay.scale", self.scale))
        object.__setattr__(self, "shape", positive("delay.shape", self.shape))

    def sample(self, key, shape=()):
        u = jax.random.uniform(key, shape, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
        return self.scale * u ** (-1.0 / self.shape)

    def scipy(self):
        return stats.pareto(b=self.shape, scale=self.scale)

    @property
    def mean(self):
        return self.shape * self.scale / (self.shape - 1) if self.shape > 1 else math.inf

    @property
    def support_start(self):
        return self.scale


@dataclasses.dataclass(frozen=True)
class LogNormal(DelayLaw):
    """exp(Normal(mu, sigma))."""

    mu: float = 0.0
    sigma: float = 1.0
    name: ClassVar[str] = "lognormal"

    def __post_init__(self):
        mu = float(self.mu)
        require(math.isfinite(mu), "delay.mu", self.mu, "must be a finite number")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", positive("delay.sigma", self.sigma))

    def sample(self, key, shape=()):
        return jnp.exp(self.mu + self.sigma * jax.random.normal(key, shape))

    def scipy(self):
        return stats.lognorm(s=self.sigma, scale=math.exp(self.mu))


@dataclasses.dataclass(frozen=True)
class Weibull(DelayLaw):
    """Weibull with `scale` and `shape` (shape < 1: heavy-ish tail)."""

    scale: float = 1.0
    shape: float = 1.5
    name: ClassVar[str] = "weibull"

    def __post_init__(self):
        object.__setattr__(self, "scale", positive("delay.scale", self.scale))
        object.__setattr__(self, "shape", positive("delay.shape", self.shape))

    def sample(self, key, shape=()):
        return jax.random.weibull_min(key, self.scale, self.shape, shape)

    def scipy(self):
        return stats.weibull_min(c=self.shape, scale=self.scale)


@dataclasses.dataclass(frozen=True)
class Gamma(DelayLaw):
    """Gamma with `shape` and `scale` (mean shape*scale)."""

    shape: float = 2.0
    scale: float = 0.5
    name: ClassVar[str] = "gamma"

    def __post_init__(self):
        object.__setattr__(self, "shape", positive("delay.shape", self.shape))
        object.__setattr__(self, "scale", positive("delay.scale", self.scale))

    def sample(self, key, shape=()):
        return self.scale * jax.random.gamma(key, self.shape, shape)

    def scipy(self):
        return stats.gamma(a=self.shape, scale=self.scale)


@dataclasses.dataclass(frozen=True)
class Uniform(DelayLaw):
    """Uniform on [low, high]."""

    low: float = 0.5
    high: float = 1.5
    name: ClassVar[str] = "uniform"

    def __post_init__(self):
        low, high = float(self.low), float(self.high)
        require(math.isfinite(low) and low >= 0, "delay.low", self.low, "must be a finite number >= 0")
        require(math.isfinite(high) and high > low, "delay.high", self.high, f"must be finite and > delay.low={low}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, key, shape=()):
        return jax.random.uniform(key, shape, minval=self.low, maxval=self.high)

    def scipy(self):
        return stats.uniform(loc=self.low, scale=self.high - self.low)

    @property
    def support_start(self):
        return self.low


@dataclasses.dataclass(frozen=True)
class Constant(DelayLaw):
    """Every gradient takes exactly `value` (all ties: lower worker index wins)."""

    value: float = 1.0
    name: ClassVar[str] = "constant"

    def __post_init__(self):
        object.__setattr__(self, "value", positive("delay.value", self.value))

    def sample(self, key, shape=()):
        return jnp.full(shape, self.value, dtype=jnp.float32)

    @property
    def mean(self):
        return self.value

    def cdf(self, x):
        # samples may be float32: the atom sits at the value as sampled, whichever precision
        atom = min(self.value, float(np.float32(self.value)))
        return (np.asarray(x, dtype=np.float64) >= atom).astype(np.float64)

    @property
    def support_start(self):
        return self.value


@dataclasses.dataclass(frozen=True)
class Hyperexponential(DelayLaw):
    """With probability probs[i], an Exponential(rates[i]): 'mostly fast, sometimes very slow'."""

    probs: tuple[float, ...] = (0.9, 0.1)
    rates: tuple[float, ...] = (2.0, 0.2)
    name: ClassVar[str] = "hyperexponential"

    def __post_init__(self):
        try:
            probs = tuple(float(p) for p in self.probs)
            rates = tuple(float(r) for r in self.rates)
        except (TypeError, ValueError):
            raise ConfigError(
                f"delay.probs={self.probs!r}, delay.rates={self.rates!r} are invalid: must be lists of numbers."
            ) from None
        require(len(probs) >= 1, "delay.probs", self.probs, "must hold at least one probability")
        require(len(probs) == len(rates), "delay.rates", self.rates, f"must have the same length as delay.probs ({len(probs)})")
        require(all(math.isfinite(p) and p >= 0 for p in probs), "delay.probs", self.probs, "must all be >= 0")
        require(abs(sum(probs) - 1.0) < 1e-6, "delay.probs", self.probs, "must sum to 1")
        for r in rates:
            positive("delay.rates", r)
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "rates", rates)

    def sample(self, key, shape=()):
        kc, ke = jax.random.split(key)
        which = jax.random.categorical(kc, jnp.log(jnp.asarray(self.probs, jnp.float32)), shape=shape)
        return jax.random.exponential(ke, shape) / jnp.asarray(self.rates, jnp.float32)[which]

    @property
    def mean(self):
        return float(sum(p / r for p, r in zip(self.probs, self.rates)))

    def cdf(self, x):
        x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
        return sum(p * (1.0 - np.exp(-r * x)) for p, r in zip(self.probs, self.rates))


@dataclasses.dataclass(frozen=True, eq=False)
class Trace(DelayLaw):
    """Resamples measured compute times (uniformly, with replacement) from a CSV or NPY file.

    A CSV may have a header; its first numeric column is used. Values must be finite and > 0.
    """

    path: str = ""
    name: ClassVar[str] = "trace"

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        values = load_trace(self.path)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_digest", hashlib.sha1(values.tobytes()).hexdigest())

    @property
    def values(self) -> np.ndarray:
        return self._values  # type: ignore[attr-defined]

    def __eq__(self, other):
        return isinstance(other, Trace) and other._digest == self._digest  # type: ignore[attr-defined]

    def __hash__(self):
        return hash(("trace", self._digest))  # type: ignore[attr-defined]

    def sample(self, key, shape=()):
        table = jnp.asarray(self.values, jnp.float32)
        return table[jax.random.randint(key, shape, 0, table.shape[0])]

    @property
    def mean(self):
        return float(self.values.mean())

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.searchsorted(np.sort(self.values), x, side="right") / self.values.size

    @property
    def support_start(self):
        return float(self.values.min())


def load_trace(path: str) -> np.ndarray:
    """Read and validate a trace file of compute times (float64, 1-D)."""
    field = "delay.path"
    if not path:
        raise ConfigError(f"{field} is empty: give a .csv or .npy file of measured compute times.")
    if not os.path.isfile(path):
        raise ConfigError(f"{field}={path!r} is invalid: no such file.")
    try:
        if path.endswith(".npy"):
            values = np.load(path, allow_pickle=False)
        else:
            values = _read_csv_column(path)
        values = np.asarray(values, dtype=np.float64)
    except ConfigError:
        raise
    except Exception as exc:  # unreadable or non-numeric
        raise ConfigError(f"{field}={path!r} is invalid: cannot read numbers from it ({exc}).") from None
    if values.ndim > 1 and sorted(values.shape)[:-1] != [1] * (values.ndim - 1):  # (N, 1) and (1, N) are one column
        raise ConfigError(
            f"{field}={path!r} is invalid: it holds an array of shape {values.shape}; a trace is one 1-D "
            "pool of compute times that every worker draws from (for per-worker speeds use `speeds`)."
        )
    values = values.ravel()
    require(values.size > 0, field, path, "the file holds no values")
    require(bool(np.all(np.isfinite(values))), field, path, "every value must be finite (found NaN or inf)")
    require(bool(np.all(values > 0)), field, path, "every compute time must be > 0")
    return values


def _read_csv_column(path: str) -> np.ndarray:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f):
            cell = line.strip().split(",")[0].strip()
            if not cell:
                continue
            try:
                rows.append(float(cell))
            except ValueError:
                if n == 0 and not rows:  # a header
                    continue
                raise ConfigError(
                    f"delay.path={path!r} is invalid: line {n + 1} is not a number ({cell!r})."
                ) from None
    return np.asarray(rows, dtype=np.float64)


LAWS: dict[str, type[DelayLaw]] = {
    cls.name: cls
    for cls in (
        Exponential,
        ShiftedExponential,
        Pareto,
        LogNormal,
        Weibull,
        Gamma,
        Uniform,
        Constant,
        Hyperexponential,
        Trace,
    )
}


def make(name: str, **params) -> DelayLaw:
    """Build a law by its snake_case name: make('pareto', scale=1, shape=2.5)."""
    cls = registered("delay", LAWS, name, params)
    if name == "hyperexponential":
        params = {k: tuple(v) if not isinstance(v, (int, float)) else (v,) for k, v in params.items()}
    return cls(**params)


SPEED_PATTERNS = ("homogeneous", "sqrt", "linear", "two_tier")


def speeds(spec, P: int) -> np.ndarray | None:
    """Per-worker speed factors s_i (worker i draws s_i * X), or None for homogeneous workers.

    `spec` is None, a named pattern ('homogeneous'; 'sqrt': s_i = sqrt(i), i = 1..P, the
    fixed-computation model of Tyurin & Richtárik; 'linear': s_i = i; 'two_tier': workers i > P // 2
    are 4x slower, the slower half, or ceil(P/2) of them for odd P), or a sequence of P positive numbers.
    """
    if spec is None or (isinstance(spec, str) and spec == "homogeneous"):
        return None
    if isinstance(spec, str):
        i = np.arange(1, P + 1, dtype=np.float64)
        if spec == "sqrt":
            return np.sqrt(i)
        if spec == "linear":
            return i
        if spec == "two_tier":
            return np.where(i > P // 2, 4.0, 1.0)
        raise unknown("speeds", spec, SPEED_PATTERNS)
    try:
        s = np.asarray(spec, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ConfigError(
            f"speeds={spec!r} is invalid: must be None, one of {', '.join(SPEED_PATTERNS)}, or P={P} positive numbers."
        ) from None
    require(s.size == P, "speeds", s.tolist(), f"must have P={P} entries (one per worker)")
    require(bool(np.all(np.isfinite(s) & (s > 0))), "speeds", s.tolist(), "every speed factor must be finite and > 0")
    return s
