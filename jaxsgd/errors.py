"""The one exception type jaxsgd raises for bad user input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np


class ConfigError(ValueError):
    """A user-supplied value is invalid. The message names the field, the value and what is allowed."""


def suggest(name: str, allowed: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint for a misspelled option name ('' when nothing is close)."""
    close = difflib.get_close_matches(str(name), list(allowed), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown(field: str, value: object, allowed: Iterable[str]) -> ConfigError:
    """The error for an option name that is not one of `allowed`."""
    allowed = sorted(allowed)
    return ConfigError(
        f"{field}={value!r} is not known; allowed: {', '.join(allowed)}.{suggest(str(value), allowed)}"
    )


def require(ok: bool, field: str, value: object, allowed: str) -> None:
    """Raise ConfigError naming `field` unless `ok`."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {allowed}.")


def positive(field: str, value: object) -> float:
    """`value` as a float, checked finite and > 0 (a boolean is not a number here)."""
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{field}={value!r} is invalid: must be a positive number.")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{field}={value!r} is invalid: must be a positive number.") from None
    require(v > 0 and v < float("inf"), field, value, "must be a finite number > 0")
    return v


#: The largest seed: seeds are 32-bit signed integers inside the compiled simulation, whatever the precision.
MAX_SEED = 2**31 - 1


def seed_int(value: object) -> int:
    """`value` as a seed: an integer in 0..MAX_SEED (not a boolean)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and 0 <= int(value) <= MAX_SEED
    require(ok, "seed", value, f"must be an integer in 0..{MAX_SEED}")
    return int(value)


def positive_int(field: str, value: object, minimum: int = 1) -> int:
    """`value` as an int, checked >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{field}={value!r} is invalid: must be an integer >= {minimum}.")
    v = int(value)  # type: ignore[arg-type]
    require(v >= minimum, field, value, f"must be an integer >= {minimum}")
    return v


def registered(field: str, registry: dict, name: str, params: dict) -> type:
    """The class registered under `name`, after checking `params` are among its dataclass fields."""
    import dataclasses

    if name not in registry:
        raise unknown(field, name, registry)
    cls = registry[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    extra = set(params) - fields
    if extra:
        raise ConfigError(f"{field}={name} has no parameter {sorted(extra)}; its parameters are {sorted(fields)}.")
    return cls
