"""Learning-rate rules (SPEC §4-§5) and the server optimizer.

A rule is split the optax way: a base learning rate `eta` (optionally an optax schedule over the
update index) fed to an ordinary optax optimizer, and a per-gradient weight, a function of the
gradient's staleness (and of the distance ||w_j - w_tau||^2) relative to that base. Update j applies
(1/K) sum_l weight_l * g_l through the optimizer, so with SGD
w_{j+1} = w_j - (1/K) sum_l eta_j * weight_l * g_l, i.e. eta_{l,j} = eta_j * weight_l.

Every numeric field of a rule may be a list: the rule then describes a grid (the cartesian product of
its lists), which the engine runs in one compiled, vmapped call.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .errors import ConfigError, registered, require, unknown

__all__ = [
    "Rule",
    "Constant",
    "StalenessAware",
    "DelayAdaptive",
    "Polynomial",
    "Threshold",
    "Compensating",
    "RULES",
    "make",
    "Optimizer",
    "OPTIMIZER_ALIASES",
]

Number = float | int


def _as_tuple(field: str, value, integer: bool = False) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else (value,)
    require(len(values) >= 1, f"lr.{field}", value, "must hold at least one value")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            raise ConfigError(f"lr.{field}={value!r} is invalid: must be a number or a list of numbers.")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"lr.{field}={value!r} is invalid: must be a number or a list of numbers.") from None
        require(math.isfinite(x), f"lr.{field}", value, "every value must be finite")
        if integer:
            require(x.is_integer(), f"lr.{field}", value, "every value must be an integer")
        out.append(int(x) if integer else x)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Rule:
    """Base learning-rate rule: base `eta` (scalar or list), an optional optax schedule.

    schedule: None for a constant base rate, or the name of an optax schedule function (e.g.
    'cosine_decay_schedule', 'exponential_decay', 'linear_schedule', 'polynomial_schedule') called as
    optax.<schedule>(init_value=eta, **schedule_kwargs).
    """

    eta: Number | tuple = 0.1
    schedule: str | None = None
    schedule_kwargs: tuple = ()
    name: ClassVar[str] = ""
    #: numeric fields that may be lists (grid axes); eta first
    grid_fields: ClassVar[tuple[str, ...]] = ("eta",)
    integer_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        for f in self.grid_fields:
            values = _as_tuple(f, getattr(self, f), integer=f in self.integer_fields)
            object.__setattr__(self, f, values)
        for v in self.eta:
            require(v > 0, "lr.eta", self.eta, "must be > 0")
        object.__setattr__(self, "schedule_kwargs", _freeze_kwargs(self.schedule_kwargs))
        if self.schedule is None and len(self.schedule_kwargs):
            raise ConfigError(f"lr.schedule_kwargs={_thaw(self.schedule_kwargs)!r} is invalid: it needs lr.schedule "
                              "(an optax schedule, e.g. lr.schedule=cosine_decay_schedule).")
        if self.schedule is not None:
            fn = getattr(optax, str(self.schedule), None)
            schedules = sorted(
                n for n in dir(optax) if n.endswith(("_schedule", "_decay")) and not n.startswith("_")
            )
            if not callable(fn) or "init_value" not in inspect.signature(fn).parameters:
                raise unknown("lr.schedule", self.schedule, [s for s in schedules if _takes_init_value(s)])
            try:
                fn(init_value=1.0, **_thaw(self.schedule_kwargs))
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"lr.schedule_kwargs={_thaw(self.schedule_kwargs)!r} do not fit optax.{self.schedule}: {exc}"
                ) from None

    # --- grid ---------------------------------------------------------------------------------
    def grid(self) -> dict[str, np.ndarray]:
        """The grid of numeric parameters: {field: (G,) array}, the cartesian product of the lists."""
        axes = [getattr(self, f) for f in self.grid_fields]
        points = list(itertools.product(*axes))
        return {f: np.asarray([p[i] for p in points], dtype=np.float64) for i, f in enumerate(self.grid_fields)}

    @property
    def grid_size(self) -> int:
        return int(np.prod([len(getattr(self, f)) for f in self.grid_fields]))

    def structure(self) -> Rule:
        """This rule with every grid axis replaced by a placeholder: the static (hashable) part, the
        same for every value of the numeric parameters (so new values do not recompile)."""
        return dataclasses.replace(self, **{f: (1,) for f in self.grid_fields})

    def at(self, index: int) -> Rule:
        """The rule at one grid point."""
        g = self.grid()
        return dataclasses.replace(self, **{f: (g[f][index],) for f in self.grid_fields})

    # --- traced ---------------------------------------------------------------------------------
    def base_rate(self, params: dict) -> Callable | jax.Array:
        """The base learning rate (a schedule over the update index, or a scalar) at grid point `params`."""
        if self.schedule is None:
            return params["eta"]
        return getattr(optax, self.schedule)(init_value=params["eta"], **_thaw(self.schedule_kwargs))

    def weight(self, params: dict, staleness: jax.Array, dist2: jax.Array, P: int) -> jax.Array:
        """Per-gradient weight relative to the base rate: (K,) from staleness (K,) and dist2 (K,)."""
        return jnp.ones(staleness.shape, dist2.dtype)

    def params(self) -> dict:
        d = {"rule": self.name}
        for f in self.grid_fields:
            v = getattr(self, f)
            d[f] = v[0] if len(v) == 1 else list(v)
        if self.schedule is not None:
            d["schedule"] = self.schedule
            d.update({f"schedule.{k}": v for k, v in self.schedule_kwargs})
        return d


class _FrozenDict(tuple):
    """A dict frozen into a sorted tuple of items (hashable, for static arguments)."""


def _freeze(v):
    if isinstance(v, _FrozenDict):
        return v
    if isinstance(v, dict) or hasattr(v, "items"):
        return _FrozenDict(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _freeze_kwargs(kwargs) -> _FrozenDict:
    """Keyword arguments (a dict or (name, value) pairs) frozen: hashable, sorted by name."""
    return _freeze({str(k): v for k, v in (kwargs.items() if hasattr(kwargs, "items") else kwargs)})


def _thaw(v):
    """Inverse of _freeze: frozen dicts back to dicts (lists stay tuples)."""
    if isinstance(v, _FrozenDict):
        return {k: _thaw(x) for k, x in v}
    if isinstance(v, tuple):
        return tuple(_thaw(x) for x in v)
    return v


def _takes_init_value(name: str) -> bool:
    try:
        return "init_value" in inspect.signature(getattr(optax, name)).parameters
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class Constant(Rule):
    """eta_{l,j} = eta (or an optax schedule of j)."""

    name: ClassVar[str] = "constant"


@dataclasses.dataclass(frozen=True)
class StalenessAware(Rule):
    """Zhang et al. 2016: eta0 / max(staleness, 1)."""

    name: ClassVar[str] = "staleness_aware"

    def weight(self, params, staleness, dist2, P):
        return 1.0 / jnp.maximum(staleness, 1).astype(dist2.dtype)


@dataclasses.dataclass(frozen=True)
class DelayAdaptive(Rule):
    """Mishchenko et al. 2022: eta * P / max(P, staleness)."""

    name: ClassVar[str] = "delay_adaptive"

    def weight(self, params, staleness, dist2, P):
        return P / jnp.maximum(staleness, P).astype(dist2.dtype)


@dataclasses.dataclass(frozen=True)
class Polynomial(Rule):
    """eta * (1 + staleness)^(-a)."""

    a: Number | tuple = 0.5
    name: ClassVar[str] = "polynomial"
    grid_fields: ClassVar[tuple[str, ...]] = ("eta", "a")

    def __post_init__(self):
        super().__post_init__()
        for v in self.a:
            require(v >= 0, "lr.a", self.a, "must be >= 0")

    def weight(self, params, staleness, dist2, P):
        return (1.0 + staleness.astype(dist2.dtype)) ** (-params["a"])


@dataclasses.dataclass(frozen=True)
class Threshold(Rule):
    """eta for gradients with staleness <= bound; staler gradients are dropped (weight 0)."""

    bound: int | tuple = 4
    name: ClassVar[str] = "threshold"
    grid_fields: ClassVar[tuple[str, ...]] = ("eta", "bound")
    integer_fields: ClassVar[tuple[str, ...]] = ("bound",)

    def __post_init__(self):
        super().__post_init__()
        for v in self.bound:
            require(v >= 0, "lr.bound", self.bound, "must be an integer >= 0")

    def weight(self, params, staleness, dist2, P):
        return (staleness <= params["bound"]).astype(dist2.dtype)


@dataclasses.dataclass(frozen=True)
class Compensating(Rule):
    """The paper's rule: eta_{l,j} = min(C / ||w_j - w_tau||^2, eta_max), with eta = eta_max.

    Fresh gradients (w_tau = w_j) get eta_max. It is applied as a weight min(C / (d^2 eta), 1) on the
    base rate; with lr.schedule the whole rate follows the schedule, so at step j it is
    min(C s_j / d^2, eta s_j) for the schedule's factor s_j = eta_j / eta.
    """

    C: Number | tuple = 0.01
    name: ClassVar[str] = "compensating"
    grid_fields: ClassVar[tuple[str, ...]] = ("eta", "C")

    def __post_init__(self):
        super().__post_init__()
        for v in self.C:
            require(v > 0, "lr.C", self.C, "must be > 0")

    def weight(self, params, staleness, dist2, P):
        eta_max = params["eta"]
        safe = jnp.where(dist2 > 0, dist2, 1.0)
        return jnp.where(dist2 > 0, jnp.minimum(params["C"] / (safe * eta_max), 1.0), 1.0).astype(dist2.dtype)


RULES: dict[str, type[Rule]] = {
    cls.name: cls for cls in (Constant, StalenessAware, DelayAdaptive, Polynomial, Threshold, Compensating)
}


def make(name: str, **params) -> Rule:
    """Build a rule by its snake_case name: make('polynomial', eta=[0.1, 0.2], a=0.5)."""
    cls = registered("lr", RULES, name, params)
    return cls(**params)


#: Friendly names for common optax optimizers with preset arguments.
OPTIMIZER_ALIASES: dict[str, tuple[str, dict]] = {
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
}


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """The parameter server's optimizer: any optax optimizer taking `learning_rate`, by name.

    Built as optax.<name>(learning_rate=base_rate, **kwargs); 'momentum' and 'nesterov' are SGD with
    momentum 0.9. The default, 'sgd', is the plain update of SPEC §1.
    """

    name: str = "sgd"
    kwargs: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "kwargs", _freeze_kwargs(self.kwargs))
        base, _ = OPTIMIZER_ALIASES.get(self.name, (self.name, {}))
        fn = getattr(optax, base, None)
        if not callable(fn) or "learning_rate" not in _parameters(fn):
            allowed = sorted(set(OPTIMIZER_ALIASES) | {n for n in dir(optax) if _is_optimizer(n)})
            raise unknown("optimizer.name", self.name, allowed)
        try:
            self.build(0.1)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optimizer.kwargs={_thaw(self.kwargs)!r} do not fit optax.{base}: {exc}") from None
        _check_kwarg_types(base, fn, _thaw(self.kwargs))

    def build(self, learning_rate) -> optax.GradientTransformation:
        base, preset = OPTIMIZER_ALIASES.get(self.name, (self.name, {}))
        return getattr(optax, base)(learning_rate=learning_rate, **{**preset, **_thaw(self.kwargs)})

    def params(self) -> dict:
        return {"optimizer": self.name, **{f"optimizer.{k}": v for k, v in self.kwargs}}


def _parameters(fn) -> set:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _check_kwarg_types(base: str, fn, kwargs: dict) -> None:
    """optax builds an optimizer from any values and fails only when it first steps, inside a run: check
    each keyword against the type of optax's default (a number where it is a number, true/false where it
    is a boolean) before that."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    for key, value in kwargs.items():
        default = params[key].default if key in params else None
        field = f"optimizer.kwargs.{key}"
        if isinstance(default, bool):
            require(isinstance(value, bool), field, value, f"must be true or false (optax.{base}'s default: {default})")
        elif isinstance(default, (int, float)):
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            require(number, field, value, f"must be a number (optax.{base}'s default: {default})")


def _is_optimizer(name: str) -> bool:
    if name.startswith("_") or not name.islower():  # classes (states, line searches) are not optimizers
        return False
    fn = getattr(optax, name, None)
    return (callable(fn) and not inspect.isclass(fn) and "learning_rate" in _parameters(fn)
            and not name.startswith(("inject", "contrib")))
