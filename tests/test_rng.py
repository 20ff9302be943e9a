"""The engine's fast paths change speed, never numbers.

- FAST_THREEFRY (jaxsgd.timeline) reproduces JAX's default threefry2x32 generator bit for bit: keys,
  fold_in (deferred until the key is used), split and the jax.random samplers the engine and the delay
  laws use.
- The column-wise k_async timeline step (scan_events, small P) gives exactly the events of the
  per-replica step it replaces (vmapped STEPS["k_async"]), ties and heterogeneous speeds included.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsgd import delays
from jaxsgd.variants import resolve

tl = importlib.import_module("jaxsgd.timeline")  # the module (jaxsgd.timeline is also a function)

KEY = jax.random.key(2024)


def words(key):
    """The threefry key words of a key (the first two words of a FAST_THREEFRY key, once settled)."""
    return np.asarray(jax.random.key_data(tl.settle(key)))[..., :2]


def same_bits(a, b):
    a, b = np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b))
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def test_fast_key_is_the_same_key():
    fast = tl.fast_key(KEY)
    assert jax.random.key_impl(fast) == tl.FAST_THREEFRY
    np.testing.assert_array_equal(words(fast), np.asarray(jax.random.key_data(KEY)))
    other = jax.random.key(1, impl="rbg")
    assert tl.fast_key(other) is other  # other generators are left alone


@pytest.mark.parametrize("n", [0, 1, 7, 2**31 + 3, 2**32 - 1])
def test_fold_in_and_split(n):
    fast = tl.fast_key(KEY)
    np.testing.assert_array_equal(words(jax.random.fold_in(fast, n)), np.asarray(jax.random.key_data(jax.random.fold_in(KEY, n))))
    twice = jax.random.fold_in(jax.random.fold_in(fast, n), 5)
    want = jax.random.fold_in(jax.random.fold_in(KEY, n), 5)
    np.testing.assert_array_equal(words(twice), np.asarray(jax.random.key_data(want)))
    for shape in [(3,), (2, 2)]:
        got = jax.random.split(jax.random.fold_in(fast, n), shape)
        want = jax.random.split(jax.random.fold_in(KEY, n), shape)
        np.testing.assert_array_equal(words(got), np.asarray(jax.random.key_data(want)))


SAMPLERS = {
    "normal": lambda k: jax.random.normal(k, (3, 100)),
    "uniform": lambda k: jax.random.uniform(k, (33,)),
    "exponential": lambda k: jax.random.exponential(k, (5,)),
    "bits8": lambda k: jax.random.bits(k, (13,), jnp.uint8),
    "bits32": lambda k: jax.random.bits(k, (3, 4)),
    "randint": lambda k: jax.random.randint(k, (50,), 0, 1000),
    "choice": lambda k: jax.random.choice(k, 1000, (20,), replace=False),
    "permutation": lambda k: jax.random.permutation(k, 64),
    "scalar normal": lambda k: jax.random.normal(k),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_bit_for_bit(name):
    draw = SAMPLERS[name]
    keys = jax.random.split(KEY, 16)
    n = jnp.arange(16, dtype=jnp.uint32) * 977
    same_bits(draw(KEY), draw(tl.fast_key(KEY)))
    want = jax.jit(jax.vmap(lambda k, i: draw(jax.random.fold_in(k, i))))(keys, n)
    got = jax.jit(jax.vmap(lambda k, i: draw(jax.random.fold_in(tl.fast_key(k), i))))(keys, n)
    same_bits(got, want)


def test_many_normals_bit_for_bit():
    """The engine's noise draw, over enough keys to reach the tails."""
    keys = jax.random.split(jax.random.key(7), 4000)
    want = jax.jit(jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 3), (100,))))(keys)
    got = jax.jit(jax.vmap(lambda k: jax.random.normal(tl.settle(jax.random.fold_in(tl.fast_key(k), 3)), (100,))))(keys)
    same_bits(got, want)


LAWS = [
    delays.Exponential(2.0),
    delays.ShiftedExponential(1.0, 2.0),
    delays.Pareto(1.0, 3.0),
    delays.LogNormal(0.0, 1.0),
    delays.Weibull(1.0, 2.0),
    delays.Uniform(0.0, 1.0),
    delays.Hyperexponential((0.3, 0.7), (1.0, 5.0)),
]


@pytest.mark.parametrize("law", LAWS, ids=lambda d: d.name)
def test_delay_laws_draw_the_same_times(law):
    keys = jax.random.split(KEY, 300)
    n = jnp.arange(300, dtype=jnp.uint32)
    want = jax.jit(jax.vmap(lambda k, i: law.sample(jax.random.fold_in(k, i))))(keys, n)
    got = jax.jit(jax.vmap(lambda k, i: law.sample(jax.random.fold_in(tl.fast_key(k), i))))(keys, n)
    same_bits(got, want)


COLUMN_CASES = [
    (16, 4, delays.Exponential(1.0), None),
    (7, 3, delays.Pareto(1.0, 2.5), (1.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0)),
    (16, 8, delays.Exponential(1.0), tuple(float(x) for x in np.sqrt(np.arange(1, 17)))),
    (5, 5, delays.Constant(1.0), None),  # every job ties: lower index first
    (4, 2, delays.Constant(0.5), (1.0, 1.0, 2.0, 2.0)),
    (32, 1, delays.Exponential(2.0), None),
]


@pytest.mark.parametrize("P, K, law, speeds", COLUMN_CASES, ids=lambda c: str(c) if isinstance(c, int) else None)
def test_column_step_equals_per_replica_step(P, K, law, speeds):
    setting = resolve("k_async", P, K)
    draw = tl.random_draw(law)
    src = tl._sources(jax.random.key(3), jnp.arange(23, dtype=jnp.uint32), P, speeds)
    state = tl._init(src, setting, draw)
    assert tl._columns_ok(setting, draw, src)
    got = jax.jit(lambda s, r: tl.scan_events(setting, draw, s, r, 200))(state, src)
    step = tl.STEPS["k_async"]

    def per_replica(s, r):
        return jax.lax.scan(lambda c, _: step(c, r, K, draw), s, None, length=200)

    want = jax.jit(jax.vmap(per_replica))(state, src)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        same_bits(a, b)
    assert np.asarray(got[1].staleness).max() > 0 or K == P
