"""The timeline: which worker's gradient arrives when, and at what staleness (SPEC §2).

Timing never depends on the model, so it is computed apart from the optimisation. Each variant is a
per-replica `step` that advances the event state by one parameter-server update; replicas are
vmapped and updates scanned, in chunks along the updates so memory stays bounded.

Randomness convention (the same for every variant): worker i's n-th started job (counting jobs that
are later cancelled) takes `speeds[i] * X` where X is drawn from the key
`fold_in(fold_in(fold_in(key(seed), replica), 0), i)` folded with n. So replica r is the same
whatever the replica count, chunk size or device count, and a table of compute times
`compute_times[r, i, n]` can drive the same code (`from_compute_times`). The keys are drawn from
through FAST_THREEFRY (below), which gives exactly the random bits of JAX's threefry2x32 but
runs several times faster on CPU.

For speed, k_async with few workers (P <= SMALL_P) advances a batch of replicas column-wise
(`_k_async_columns`: workers along the rows, replicas along the columns) rather than vmapping
`_k_async`; the two give identical events. (A column-wise K-pass selection for larger P was tried
and was 1.1-3x slower than lax.top_k under vmap at P = 64-256, so larger P vmaps `_k_async`.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax import lax

from .delays import DelayLaw
from .delays import speeds as speed_pattern
from .errors import ConfigError, positive_int, seed_int
from .variants import Setting, resolve

__all__ = ["Timeline", "TimelineState", "Event", "timeline", "from_compute_times", "STEPS"]


class TimelineState(NamedTuple):
    """Event state of one replica."""

    finish: jax.Array  # (P,) float: when each worker's current job finishes
    version: jax.Array  # (P,) int32: the model version each worker's current job started on
    count: jax.Array  # (P,) int32: jobs started so far by each worker
    clock: jax.Array  # () float: t_j, time of the last update
    update: jax.Array  # () int32: j, updates applied so far


class Event(NamedTuple):
    """One parameter-server update of one replica."""

    time: jax.Array  # () float: wall-clock time the update is applied
    worker: jax.Array  # (K,) int32: worker of each gradient, in arrival order
    staleness: jax.Array  # (K,) int32: j - tau(l, j)


class Timeline(NamedTuple):
    """Timelines of many replicas; index j is the (j+1)-th update, which produces w_{j+1}."""

    time: np.ndarray  # (replicas, updates) float: t_{j+1}
    worker: np.ndarray  # (replicas, updates, K) int32
    staleness: np.ndarray  # (replicas, updates, K) int32

    @property
    def time_per_update(self) -> float:
        """Mean over replicas of t_J / J (SPEC §8)."""
        return float(np.mean(self.time[:, -1]) / self.time.shape[1])

    @property
    def staleness_mean(self) -> float:
        return float(np.mean(self.staleness))

    @property
    def fresh_fraction(self) -> float:
        return float(np.mean(self.staleness == 0))


# A draw function maps (source, workers (n,), counts (n,)) to compute times (n,).
Draw = Callable[[object, jax.Array, jax.Array], jax.Array]


def _argmin_first(x: jax.Array) -> jax.Array:
    """Index of the smallest entry, the lowest index on ties."""
    return jnp.argmin(x).astype(jnp.int32)


#: up to this many workers, _smallest_k ranks by pairwise comparison (P^2 vectorised compares) and
#: _put writes by one-hot selects, rather than calling lax.top_k (a per-row partial sort on CPU) and
#: scatters (scalar loops that also force copies of the loop state)
SMALL_P = 32


def _smallest_k(x: jax.Array, K: int) -> tuple[jax.Array, jax.Array]:
    """The K smallest entries ascending and their indices (ties: lower index first)."""
    P = x.shape[0]
    if P > SMALL_P:
        neg, idx = lax.top_k(-x, K)
        return -neg, idx.astype(jnp.int32)
    i = jnp.arange(P, dtype=jnp.int32)
    # before[j, i]: entry j precedes entry i in the order (value, index). Every reduction below runs
    # over the leading axis, which XLA vectorises along the trailing one.
    before = (x[:, None] < x[None, :]) | ((x[:, None] == x[None, :]) & (i[:, None] < i[None, :]))
    rank = jnp.sum(before, axis=0, dtype=jnp.int32)
    pick = rank[:, None] == jnp.arange(K, dtype=jnp.int32)[None, :]  # (P, K): one True per column
    idx = jnp.sum(jnp.where(pick, i[:, None], 0), axis=0, dtype=jnp.int32)
    return jnp.sum(jnp.where(pick, x[:, None], 0), axis=0, dtype=x.dtype), idx


def _put(x: jax.Array, idx: jax.Array, values) -> jax.Array:
    """x.at[idx].set(values) for distinct indices idx (K,); values (K,) or a scalar."""
    P = x.shape[0]
    if P > SMALL_P:
        return x.at[idx].set(values)
    hit = idx[:, None] == jnp.arange(P, dtype=idx.dtype)[None, :]  # (K, P)
    values = jnp.broadcast_to(jnp.asarray(values, x.dtype), idx.shape)
    return jnp.where(jnp.any(hit, axis=0), jnp.sum(jnp.where(hit, values[:, None], 0), axis=0, dtype=x.dtype), x)


def _restart_all(state: TimelineState, src, draw: Draw) -> tuple[jax.Array, jax.Array]:
    """Every worker starts a job at the current clock: returns (finish, count)."""
    P = state.finish.shape[0]
    finish = state.clock + draw(src, jnp.arange(P, dtype=jnp.int32), state.count)
    return finish, state.count + 1


def _k_sync(state: TimelineState, src, K: int, draw: Draw):
    finish, count = _restart_all(state, src, draw)
    times, idx = _smallest_k(finish, K)
    t = times[K - 1]
    new = state._replace(finish=finish, count=count, clock=t, update=state.update + 1)
    return new, Event(t, idx, jnp.zeros(K, jnp.int32))


def _k_batch_sync(state: TimelineState, src, K: int, draw: Draw):
    finish, count = _restart_all(state, src, draw)

    def arrival(l, carry):  # the first K-1 arrivals restart on the same w_j
        finish, count, workers = carry
        i = _argmin_first(finish)
        x = draw(src, i[None], count[i][None])[0]
        return finish.at[i].add(x), count.at[i].add(1), workers.at[l].set(i)

    workers = jnp.zeros(K, jnp.int32)
    finish, count, workers = lax.fori_loop(0, K - 1, arrival, (finish, count, workers))
    i = _argmin_first(finish)  # the K-th arrival triggers the update; in-flight work is cancelled
    t = finish[i]
    workers = workers.at[K - 1].set(i)
    new = state._replace(finish=finish, count=count, clock=t, update=state.update + 1)
    return new, Event(t, workers, jnp.zeros(K, jnp.int32))


def _k_async(state: TimelineState, src, K: int, draw: Draw):
    times, idx = _smallest_k(state.finish, K)  # K distinct workers: pushers wait, so each pushes once
    t = times[K - 1]
    staleness = state.update - state.version[idx]
    x = draw(src, idx, state.count[idx])
    new = TimelineState(
        finish=_put(state.finish, idx, t + x),
        version=_put(state.version, idx, state.update + 1),
        count=_put(state.count, idx, state.count[idx] + 1),
        clock=t,
        update=state.update + 1,
    )
    return new, Event(t, idx, staleness)


def _k_batch_async(state: TimelineState, src, K: int, draw: Draw):
    def arrival(l, carry):
        finish, version, count, workers, staleness, _ = carry
        i = _argmin_first(finish)
        t = finish[i]
        x = draw(src, i[None], count[i][None])[0]
        pulled = state.update + (l == K - 1).astype(jnp.int32)  # the K-th pusher pulls w_{j+1}
        return (
            finish.at[i].set(t + x),
            version.at[i].set(pulled),
            count.at[i].add(1),
            workers.at[l].set(i),
            staleness.at[l].set(state.update - version[i]),
            t,
        )

    zeros = jnp.zeros(K, jnp.int32)
    init = (state.finish, state.version, state.count, zeros, zeros, state.clock)
    finish, version, count, workers, staleness, t = lax.fori_loop(0, K, arrival, init)
    new = TimelineState(finish, version, count, t, state.update + 1)
    return new, Event(t, workers, staleness)


#: Per-replica step of each canonical variant: (state, source, K, draw) -> (state, Event).
STEPS: dict[str, Callable] = {
    "k_sync": _k_sync,
    "k_batch_sync": _k_batch_sync,
    "k_async": _k_async,
    "k_batch_async": _k_batch_async,
}


def init_state(setting: Setting, src, draw: Draw, dtype=None) -> TimelineState:
    """State at time 0 of one replica. Async variants start every worker on w_0 at time 0."""
    P = setting.P
    dtype = dtype or jnp.zeros(()).dtype
    zeros_i = jnp.zeros(P, jnp.int32)
    if setting.stale:
        finish = draw(src, jnp.arange(P, dtype=jnp.int32), zeros_i).astype(dtype)
        count = zeros_i + 1
    else:
        finish, count = jnp.zeros(P, dtype), zeros_i
    return TimelineState(finish, zeros_i, count, jnp.zeros((), dtype), jnp.zeros((), jnp.int32))


# ---------------------------------------------------------------------------- fast threefry
#
# XLA:CPU lowers JAX's threefry2x32 primitive as a rolled 5-iteration loop whose every step is a
# separate kernel over the whole batch; inside the simulation loop that made the random numbers the
# dominant cost. FAST_THREEFRY is the same Threefry-2x32 generator with the hash unrolled into plain
# elementwise jnp code, which XLA fuses and vectorises. Its keys also defer fold_in: a key is
# (k1, k2, n, pending), and (k1, k2) is folded with n only when the key is used, in the same kernel as
# the draw (a folded key materialised as a pair would be hashed twice, once per word). It reproduces
# JAX's default generator (threefry2x32, partitionable mode) bit for bit -- fold_in, split and every
# jax.random sampler -- so swapping it in (`fast_key`) changes speed, never the random bits.
# tests/test_rng.py checks it.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 (20 rounds) of counter words (x1, x2) under key words (k1, k2), uint32, broadcast:
    the hash of jax.extend.random.threefry_2x32, unrolled."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _counts(shape) -> jax.Array:
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        raise NotImplementedError("FAST_THREEFRY draws fewer than 2**32 values per call")
    return lax.iota(jnp.uint32, max(size, 1))[:size].reshape(shape)


def _resolve(key) -> tuple[jax.Array, jax.Array]:
    """The threefry key words of a FAST_THREEFRY key (4,): the pending fold_in applied."""
    a, b = threefry2x32(key[0], key[1], np.uint32(0), key[2])
    pending = key[3] != 0
    return jnp.where(pending, a, key[0]), jnp.where(pending, b, key[1])


def _hash(key, counts) -> tuple[jax.Array, jax.Array]:
    k1, k2 = _resolve(key)
    return threefry2x32(k1, k2, jnp.zeros_like(counts), counts)


def _plain(a, b, axis=-1):
    zero = jnp.zeros_like(a)
    return jnp.stack([a, b, zero, zero], axis=axis)


def _seed(seed):
    k = jax.random.key_data(jax.random.key(seed, impl="threefry2x32"))
    return _plain(k[0], k[1])


def _split(key, shape):
    return _plain(*_hash(key, _counts(shape)))


def _fold_in(key, data):
    k1, k2 = _resolve(key)
    return jnp.stack([k1, k2, jnp.asarray(data, jnp.uint32), np.uint32(1)])


def _random_bits(key, bit_width, shape):
    a, b = _hash(key, _counts(shape))
    if bit_width == 64:
        return (a.astype(jnp.uint64) << np.uint64(32)) | b.astype(jnp.uint64)
    bits = a ^ b
    return bits if bit_width == 32 else bits.astype(jnp.dtype(f"uint{bit_width}"))


FAST_THREEFRY = jax.extend.random.define_prng_impl(
    key_shape=(4,), seed=_seed, split=_split, random_bits=_random_bits, fold_in=_fold_in,
    name="jaxsgd_threefry2x32_unrolled", tag="fty",
)


def fast_key(key: jax.Array) -> jax.Array:
    """The same key under FAST_THREEFRY where that gives identical numbers (a threefry2x32 key with
    jax_threefry_partitionable on, JAX's default); otherwise the key unchanged."""
    if (
        isinstance(key, jax.Array)
        and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        and str(jax.random.key_impl(key)) == "threefry2x32"
        and jax.config.jax_threefry_partitionable
    ):
        kd = jax.random.key_data(key)
        return jax.random.wrap_key_data(_plain(kd[..., 0], kd[..., 1]), impl=FAST_THREEFRY)
    return key


def settle(key: jax.Array) -> jax.Array:
    """A FAST_THREEFRY key with its pending fold_in applied, to hash once where a key is drawn from
    many times (in a kernel over the draws, a pending fold_in would be redone for each); any other
    key unchanged."""
    if (
        isinstance(key, jax.Array)
        and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        and jax.random.key_impl(key) == FAST_THREEFRY
    ):
        kd = jax.random.key_data(key)
        a, b = _resolve(jnp.moveaxis(kd, -1, 0))
        return jax.random.wrap_key_data(_plain(a, b), impl=FAST_THREEFRY)
    return key


# ---------------------------------------------------------------------------- random source


class RandomSource(NamedTuple):
    """Per-replica source of compute times: one key per worker, and the speed factors."""

    keys: jax.Array  # (P,) typed keys
    speeds: jax.Array | None  # (P,) float, or None: every worker at speed 1


@functools.lru_cache(maxsize=64)
def random_draw(delay: DelayLaw) -> Draw:
    """The draw function of `delay`: worker i's n-th job takes speeds[i] * X(fold_in(key_i, n))."""

    def draw(src: RandomSource, workers, counts):
        keys = jax.vmap(jax.random.fold_in)(fast_key(src.keys[workers]), counts)
        x = jax.vmap(lambda k: delay.sample(k))(keys)
        return x if src.speeds is None else x * src.speeds[workers]

    draw.delay = delay  # lets scan_events draw from the key words directly
    return draw


# ---------------------------------------------------------------------------- many replicas at once


def _rank(finish: jax.Array) -> jax.Array:
    """(P, R) arrival order of each worker's current job (order: finish time, then worker index), by
    P^2 comparisons in one reduction: for small P (P <= SMALL_P)."""
    P = finish.shape[0]
    fi, fj = finish[:, None, :], finish[None, :, :]
    lower = np.tril(np.ones((P, P), bool), -1)[:, :, None]  # j < i: a tie puts j first
    before = jnp.where(lower, fj <= fi, fj < fi)  # [i, j]: job j arrives before job i
    return jnp.sum(before, axis=1, dtype=jnp.int32)


def _k_async_columns(K: int, sample, words: jax.Array, speeds: jax.Array | None, carry):
    """One k_async update of a batch of R replicas stored column-wise: carry = (finish (P, R), ints
    (2P + 1, R)), ints stacking version (rows 0..P-1), count (rows P..2P-1) and update (row 2P), so
    that one kernel writes all three; words (2, P, R) the workers' key words; speeds (P, R) or None
    (all 1). Returns the new carry and the update's events: one int32 array (2K + 1, R) holding the
    bits of t, the K workers and their staleness (float64 times: a tuple (t, workers, staleness)).

    The same numbers as vmap(_k_async). Every reduction runs across workers, elementwise along
    replicas, where XLA vectorises it (under vmap the worker axis is the minor one and nothing
    vectorises), and a step has three: the P^2 ranking (so small P only, P <= SMALL_P), one pick of
    every field of the K arrivals at once (exactly one term of each sum is not zero, so the integer
    sums of their bits are exact) and the pushers' next finish times. On CPU each kernel has a fixed
    cost that a block of a hundred replicas does not amortise, so few kernels, and one output per
    step, is what makes it fast."""
    finish, ints = carry
    P = finish.shape[0]
    version, count, update = ints[:P], ints[P : 2 * P], ints[2 * P]
    itype = _int_type(finish.dtype)
    rank = _rank(finish)  # (P, R): arrival order
    sel = rank[None] == jnp.arange(K, dtype=jnp.int32)[:, None, None]  # (K, P, R)
    rows = [_to_int(finish, itype), version.astype(itype), count.astype(itype), _to_int(words[0], itype),
            _to_int(words[1], itype), jnp.broadcast_to(lax.iota(itype, P)[:, None], finish.shape)]
    if speeds is not None:
        rows.append(_to_int(speeds, itype))
    fields = jnp.stack(rows)  # fused into the pick: never materialised
    picked = jnp.sum(jnp.where(sel[None], fields[:, None], 0), axis=2, dtype=itype)  # (fields, K, R)
    t = lax.bitcast_convert_type(picked[0, K - 1], finish.dtype)
    x = sample(_to_u32(picked[3]), _to_u32(picked[4]), picked[2].astype(jnp.uint32))
    if speeds is not None:
        x = x * lax.bitcast_convert_type(picked[6], finish.dtype)
    # (P, R): each pusher's next finish. Summed, as vmap(_k_async) scatters them: a select chain
    # instead lets XLA:CPU round t + s * x differently (one fused multiply-add or two roundings)
    done_at = jnp.sum(jnp.where(sel, (t + x)[:, None, :], 0), axis=0, dtype=x.dtype)
    pushed = rank < K
    ints = jnp.concatenate([jnp.where(pushed, update + 1, version), count + pushed, (update + 1)[None]])
    state = (jnp.where(pushed, done_at, finish), ints)
    staleness = (update - picked[1]).astype(jnp.int32)
    worker = picked[5].astype(jnp.int32)
    if itype == jnp.int32:  # one output per step: the bits of t, the workers, their staleness
        return state, jnp.concatenate([lax.bitcast_convert_type(t, jnp.int32)[None], worker, staleness])
    return state, (t, worker, staleness)


def _int_type(dtype):
    return jnp.int32 if jnp.dtype(dtype).itemsize == 4 else jnp.int64


def _to_int(x, itype):
    """x as an integer of type itype with the same bits (floats) or value (integers)."""
    if jnp.issubdtype(x.dtype, jnp.floating) or jnp.dtype(x.dtype).itemsize == jnp.dtype(itype).itemsize:
        return lax.bitcast_convert_type(x, itype)
    return x.astype(itype)


def _to_u32(v):
    return lax.bitcast_convert_type(v, jnp.uint32) if v.dtype == jnp.int32 else v.astype(jnp.uint32)


def _columns_ok(setting: Setting, draw, src) -> bool:
    return (
        setting.variant == "k_async"
        and setting.P <= SMALL_P
        and hasattr(draw, "delay")
        and isinstance(src, RandomSource)
        and fast_key(src.keys[:1]).dtype != src.keys.dtype  # a threefry key FAST_THREEFRY reproduces
    )


def scan_events(setting: Setting, draw: Draw, state: TimelineState, src, length: int, every: int | None = None,
                columns: bool = False):
    """Advance every replica of a batch (leading axis) by `length` updates: (state, Event with leaves
    (replicas, length, ...)). Small-P k_async runs column-wise (_k_async_columns); the rest vmaps STEPS.
    With `every` (a divisor of length), also returns the workers' versions after every `every`
    updates: (state, Event, version (replicas, length // every, P)). With `columns`, the events and
    versions come replicas last: time (length, R), worker and staleness (length, K, R), version
    (length // every, P, R), as the column-wise step makes them (no transposes)."""
    segments = length // every if every else 1
    seg_len = every or length
    if not _columns_ok(setting, draw, src):
        step = STEPS[setting.variant]

        def one(state, src):
            def segment(state, _):
                state, ev = lax.scan(lambda s, _: step(s, src, setting.K, draw), state, None, length=seg_len)
                return state, (ev, state.version)

            state, (ev, version) = lax.scan(segment, state, None, length=segments)
            return state, jax.tree.map(lambda x: x.reshape(length, *x.shape[2:]), ev), version

        state, ev, version = jax.vmap(one)(state, src)
        if columns:
            ev = Event(ev.time.T, jnp.transpose(ev.worker, (1, 2, 0)), jnp.transpose(ev.staleness, (1, 2, 0)))
            version = jnp.transpose(version, (1, 2, 0))
        return (state, ev, version) if every else (state, ev)

    delay = draw.delay

    def sample(k1, k2, n):  # X of fold_in(key (k1, k2), n), as random_draw draws it
        keys = jax.random.wrap_key_data(jnp.stack([k1, k2, n, jnp.ones_like(n)], axis=-1), impl=FAST_THREEFRY)
        return jax.vmap(jax.vmap(delay.sample))(keys)

    words = jnp.moveaxis(jax.random.key_data(src.keys), -1, 0).swapaxes(1, 2)  # (2, P, R)
    speeds = None if src.speeds is None else src.speeds.T
    step = functools.partial(_k_async_columns, setting.K, sample, words, speeds)

    P = setting.P

    def segment(c, _):
        c, ev = lax.scan(lambda c, _: step(c), c, None, length=seg_len)
        return c, (ev, c[1][:P])

    init = (state.finish.T, jnp.concatenate([state.version.T, state.count.T, state.update[None]]))
    (finish, ints), (ev, versions) = lax.scan(segment, init, None, length=segments)
    version, count, update = ints[:P], ints[P : 2 * P], ints[2 * P]
    ev = jax.tree.map(lambda x: x.reshape(length, *x.shape[2:]), ev)
    K = setting.K
    if isinstance(ev, tuple):  # float64 times: the events were not packed
        time, worker, staleness = ev
    else:  # (length, 2K + 1, R): bits of t, workers, staleness
        time = lax.bitcast_convert_type(ev[:, 0], finish.dtype)
        worker, staleness = ev[:, 1 : K + 1], ev[:, K + 1 :]
    state = TimelineState(finish.T, version.T, count.T, time[-1] if length else state.clock, update)
    if columns:
        return (state, Event(time, worker, staleness), versions) if every else (state, Event(time, worker, staleness))
    events = Event(time.T, jnp.transpose(worker, (2, 0, 1)), jnp.transpose(staleness, (2, 0, 1)))
    return (state, events, jnp.transpose(versions, (2, 0, 1))) if every else (state, events)


def replica_key(seed: int | jax.Array, replica: jax.Array) -> jax.Array:
    """The key of one replica: fold_in(key(seed), replica)."""
    base = seed if isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) else jax.random.key(seed)
    return jax.random.fold_in(base, replica)


def random_source(rkey: jax.Array, P: int, speeds: jax.Array | None) -> RandomSource:
    """Source of one replica from its key (stream 0 of the replica is the timeline's)."""
    tkey = jax.random.fold_in(rkey, 0)
    keys = jax.vmap(lambda i: jax.random.fold_in(tkey, i))(jnp.arange(P, dtype=jnp.uint32))
    s = None if speeds is None else jnp.asarray(speeds, jnp.zeros(()).dtype)
    return RandomSource(keys, s)


def table_draw(table: jax.Array, workers, counts):
    """Draw function over a table of compute times (P, N) of one replica."""
    return table[workers, counts]


# ---------------------------------------------------------------------------- runners


#: XLA:CPU options for the simulation loops. By default XLA:CPU hands small reductions to YNNPACK,
#: whose per-call cost dwarfs the work in these loops (the rank, pick and measure reductions run on a
#: few hundred numbers per step); plain XLA loops made the timeline 1.6x and the engine ~1.2x faster.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compile_loop(lowered, platform: str | None = None):
    """Compile a lowered simulation loop, with CPU_COMPILER_OPTIONS on CPU where XLA knows them."""
    if (platform or jax.default_backend()) == "cpu":
        try:
            return lowered.compile(compiler_options=CPU_COMPILER_OPTIONS)
        except jax.errors.JaxRuntimeError:  # an XLA without the option: compile as usual
            pass
    return lowered.compile()


#: bytes of one chunk's events (and, in the engine, records) by platform. On CPU 64 MB gives the
#: engine's benchmark 200-update chunks (measured faster than 50, 100 or 400). An accelerator makes a
#: whole chunk for all its replicas at once, and each chunk costs it a dispatch and a pause: at 65,536
#: replicas 64 MB made 10-update engine chunks, and an H100 sat idle for 60% of the run.
CHUNK_BYTES = {"cpu": 64 << 20}
ACCELERATOR_CHUNK_BYTES = 512 << 20


def chunk_budget(platform: str) -> int:
    """CHUNK_BYTES of the platform, ACCELERATOR_CHUNK_BYTES for any other."""
    return CHUNK_BYTES.get(platform, ACCELERATOR_CHUNK_BYTES)


def default_chunk(replicas: int, K: int, budget_bytes: int = CHUNK_BYTES["cpu"]) -> int:
    """Updates per chunk so one chunk's outputs stay within `budget_bytes`."""
    per_update = replicas * (1 + 2 * K) * 4
    return int(max(1, min(4096, budget_bytes // max(per_update, 1))))


@functools.partial(jax.jit, static_argnames=("setting", "draw", "length"))
def _scan_chunk(state: TimelineState, src, setting: Setting, draw: Draw, length: int):
    return scan_events(setting, draw, state, src, length)


@functools.partial(jax.jit, static_argnames=("P", "speeds"))
def _sources(base: jax.Array, replicas: jax.Array, P: int, speeds: tuple | None):
    """Random sources of the given replicas from the key of the seed (compiled once per shape)."""
    s = None if speeds is None else np.asarray(speeds)
    return jax.vmap(lambda r: random_source(replica_key(base, r), P, s))(replicas)


@functools.partial(jax.jit, static_argnames=("setting", "draw"))
def _init(src, setting: Setting, draw: Draw):
    return jax.vmap(lambda s: init_state(setting, s, draw))(src)


def _run(setting: Setting, src, draw: Draw, updates: int, chunk: int | None, replicas: int) -> tuple[Timeline, TimelineState]:
    K = setting.K
    state = _init(src, setting, draw)
    platform = next(iter(state.clock.devices())).platform
    chunk = chunk or default_chunk(replicas, K, chunk_budget(platform))
    dtype = state.clock.dtype
    time = np.empty((replicas, updates), dtype)
    worker = np.empty((replicas, updates, K), np.int32)
    staleness = np.empty((replicas, updates, K), np.int32)
    compiled: dict[int, Any] = {}  # by chunk length: the full chunks' and the last one's

    def keep(ev: Event, done: int, n: int) -> None:
        time[:, done : done + n] = np.asarray(ev.time)
        worker[:, done : done + n] = np.asarray(ev.worker)
        staleness[:, done : done + n] = np.asarray(ev.staleness)

    # each chunk is dispatched before the last one's events are copied out, so the device computes
    # while the host copies
    pending = None
    for done in range(0, updates, chunk):
        n = min(chunk, updates - done)
        if n not in compiled:
            compiled[n] = compile_loop(_scan_chunk.lower(state, src, setting, draw, n), platform)
        state, ev = compiled[n](state, src)
        if pending is not None:
            keep(*pending)
        pending = (ev, done, n)
    keep(*pending)
    return Timeline(time, worker, staleness), state


def timeline(
    variant: str,
    P: int,
    K: int | None = None,
    delay: DelayLaw | None = None,
    updates: int = 1000,
    replicas: int = 1,
    seed: int = 0,
    speeds=None,
    chunk: int | None = None,
) -> Timeline:
    """Simulate the timelines of `replicas` independent runs of `variant` for `updates` updates.

    Returns a Timeline of NumPy arrays: time (replicas, updates), worker and staleness
    (replicas, updates, K). `speeds` is None, a pattern name ('sqrt', 'linear', ...) or P factors.
    """
    setting = resolve(variant, P, K)
    if not isinstance(delay, DelayLaw):
        raise ConfigError(f"delay={delay!r} is invalid: must be a jaxsgd.delays law, e.g. Exponential(rate=1.0).")
    updates = positive_int("updates", updates)
    replicas = positive_int("replicas", replicas)
    if chunk is not None:
        chunk = positive_int("chunk", chunk)
    s = speed_pattern(speeds, setting.P)
    speeds_key = None if s is None else tuple(float(x) for x in s)
    base = seed if isinstance(seed, jax.Array) else jax.random.key(seed_int(seed))
    src = _sources(base, jnp.arange(replicas, dtype=jnp.uint32), setting.P, speeds_key)
    tl, _ = _run(setting, src, random_draw(delay), updates, chunk, replicas)
    return tl


def from_compute_times(
    variant: str, P: int, K: int | None, compute_times, updates: int, chunk: int | None = None
) -> Timeline:
    """Timelines driven by given compute times: compute_times[r, i, n] is worker i's n-th job in replica r.

    Raises ConfigError if some worker needs more jobs than the table holds.
    """
    setting = resolve(variant, P, K)
    updates = positive_int("updates", updates)
    if chunk is not None:
        chunk = positive_int("chunk", chunk)
    host = np.asarray(compute_times)
    if host.ndim != 3 or host.shape[1] != setting.P or host.shape[0] < 1 or host.shape[2] < 1:
        raise ConfigError(f"compute_times has shape {host.shape}: must be (replicas >= 1, P={setting.P}, jobs >= 1).")
    if not np.issubdtype(host.dtype, np.number) or not np.all(np.isfinite(host)) or not np.all(host > 0):
        raise ConfigError("compute_times is invalid: every compute time must be a finite number > 0.")
    table = jnp.asarray(host)
    tl, state = _run(setting, table, table_draw, updates, chunk, table.shape[0])
    if int(np.max(np.asarray(state.count))) > table.shape[2]:
        raise ConfigError(
            f"compute_times holds {table.shape[2]} jobs per worker but a worker needed "
            f"{int(np.max(np.asarray(state.count)))}: give a longer table."
        )
    return tl
