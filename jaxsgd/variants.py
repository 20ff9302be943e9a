"""The distributed-SGD variants of SPEC §2: names, aliases and the (variant, P, K) check."""

from __future__ import annotations

import dataclasses

from .errors import ConfigError, positive_int, unknown

#: Canonical variants, each with whether K may exceed P and whether gradients can be stale.
VARIANTS: dict[str, dict] = {
    "k_sync": {"k_above_p": False, "stale": False},
    "k_batch_sync": {"k_above_p": True, "stale": False},
    "k_async": {"k_above_p": False, "stale": True},
    "k_batch_async": {"k_above_p": True, "stale": True},
}
#: Aliases: sync = k_sync with K = P; async = k_batch_async with K = 1.
ALIASES: dict[str, str] = {"sync": "k_sync", "async": "k_batch_async"}
NAMES = tuple(VARIANTS) + tuple(ALIASES)


@dataclasses.dataclass(frozen=True)
class Setting:
    """Static, shape-fixing settings of a run: change them and JAX recompiles."""

    variant: str  #: canonical variant name (one of VARIANTS)
    P: int  #: number of workers
    K: int  #: gradients per update
    name: str  #: the name the user asked for (an alias or the canonical name)

    @property
    def stale(self) -> bool:
        """Whether gradients can be stale (the async family)."""
        return VARIANTS[self.variant]["stale"]


def resolve(variant: str, P: int, K: int | None = None) -> Setting:
    """Check a (variant, P, K) triple and return its canonical Setting.

    For the aliases K may be omitted (None); if given it must equal the alias's K (P for sync, 1 for
    async). Raises ConfigError naming the field and the allowed values.
    """
    if variant not in NAMES:
        raise unknown("variant", variant, NAMES)
    P = positive_int("P", P)
    if variant in ALIASES:
        forced = P if variant == "sync" else 1
        if K is not None and positive_int("K", K) != forced:
            raise ConfigError(
                f"K={K!r} is invalid for variant={variant}: it always uses K={'P' if variant == 'sync' else 1}"
                f" (={forced}); omit K or use variant={ALIASES[variant]}."
            )
        return Setting(ALIASES[variant], P, forced, variant)
    if K is None:
        raise ConfigError(f"K is required for variant={variant}: an integer >= 1.")
    K = positive_int("K", K)
    if not VARIANTS[variant]["k_above_p"] and K > P:
        raise ConfigError(f"K={K} is invalid for variant={variant}: must be in 1..P (P={P}).")
    return Setting(variant, P, K, variant)
