"""Problems with a known optimum (SPEC §6): a registry by snake_case name."""

from __future__ import annotations

from ..errors import ConfigError, unknown
from .base import Problem
from .noisy_quadratic import NoisyQuadratic

PROBLEMS: dict[str, type[Problem]] = {NoisyQuadratic.name: NoisyQuadratic}


def make(name: str, **params) -> Problem:
    """Build a problem by its snake_case name, e.g. make('noisy_quadratic', dim=100)."""
    if name not in PROBLEMS:
        raise unknown("problem", name, PROBLEMS)
    cls = PROBLEMS[name]
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)}
    extra = set(params) - fields
    if extra:
        raise ConfigError(f"problem={name} has no parameter {sorted(extra)}; its parameters are {sorted(fields)}.")
    return cls(**params)


__all__ = ["Problem", "NoisyQuadratic", "PROBLEMS", "make"]
