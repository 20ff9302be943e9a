"""The engine: stale-gradient SGD at the parameter server for many replicas in one jitted scan.

Per replica, the timeline step says which K gradients update j applies and at what staleness; the
dynamics evaluate each gradient at the model version the worker pulled (kept per worker, plus the
few models made since the current segment of at most SEGMENT updates began: memory O((P + SEGMENT) x
dim), never a history of versions) and apply them through an optax optimizer. Replicas and
a grid of learning-rate parameters are vmapped; updates are scanned in chunks, and replicas are
sharded across the local devices.

Keys: replica r uses fold_in(key(seed), r); stream 0 of it drives the timeline, stream 1 the
gradient noise (update j draws from fold_in(stream 1, j)), so a replica's numbers do not depend on
the replica count, chunk size, device count or the learning-rate grid around it. The draws go
through timeline.FAST_THREEFRY, which gives the same random bits as JAX's default generator.

How a chunk runs (for speed; the numbers are those of the plain per-replica scan): each device takes
its share of the replicas (shard_map) and advances them `block` replicas at a time (block sized so
their per-worker models stay in a core's cache): first the block's timeline, for all its replicas
at once (timing does not depend on the model, and a batch of timelines vectorises across
replicas), then its models, consuming those events while they are still in cache. An update writes
its new model once, into a ring of recent models, rather than into the rows of every worker that
pulls it (see _dynamics_chunk). On CPU a problem with a padded view (NoisyQuadratic) runs padded to
whole vectors (padded_problem), with the same numbers. benchmarks/bench.py measures it against a bare
JAX scan of the same arithmetic, unpadded and padded.
"""

from __future__ import annotations

import dataclasses
import functools
import time as _time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from .delays import DelayLaw
from .delays import speeds as speed_pattern
from .errors import ConfigError, positive_int, require, seed_int
from .lr import Constant, Optimizer, Rule
from .problems.base import Problem
from .results import Records, Result
from .timeline import (
    CHUNK_BYTES,
    FAST_THREEFRY,
    TimelineState,
    chunk_budget,
    compile_loop,
    fast_key,
    init_state,
    random_draw,
    random_source,
    replica_key,
    scan_events,
    settle,
)
from .variants import Setting, resolve

__all__ = ["simulate", "Static"]


@dataclasses.dataclass(frozen=True)
class Static:
    """Everything that fixes shapes or code: changing any of it recompiles."""

    setting: Setting
    delay: DelayLaw
    problem: Problem
    rule: Rule  # structure only (grid axes reduced to their first value)
    optimizer: Optimizer
    batch_size: int
    record_every: int


class Dynamics(NamedTuple):
    """Optimisation state of one replica at one grid point."""

    w: jax.Array  # (dim,) the server's model w_j
    pulled: jax.Array  # (P, dim) the model each worker computes on; (0, dim) for staleness-free variants
    opt_state: Any  # optax state


class Carry(NamedTuple):
    """Scan state of one replica."""

    timeline: TimelineState
    dynamics: Dynamics  # leaves with a leading grid axis (G, ...)
    staleness_sum: jax.Array  # () int32: sum of the staleness of the gradients applied since the last record
    fresh: jax.Array  # () int32: number of fresh gradients applied since the last record


class Record(NamedTuple):
    """What is kept every `record_every` updates, per replica."""

    time: jax.Array  # () t_j
    staleness: jax.Array  # () int32: summed staleness of the gradients applied since the last record
    fresh: jax.Array  # () int32: fresh gradients applied since the last record
    error: jax.Array  # (G,) F(w_j) - F*
    accuracy: jax.Array  # (G,) test accuracy (NaN where the problem has no test split)


def _optimizer(static: Static, params: dict) -> optax.GradientTransformation:
    return static.optimizer.build(static.rule.base_rate(params))


def _init_dynamics(static: Static, data, params: dict) -> Dynamics:
    w = static.problem.init_params(data)
    P = static.setting.P if static.setting.stale else 0
    pulled = jnp.broadcast_to(w, (P, w.shape[0]))
    return Dynamics(w, pulled, _optimizer(static, params).init(w))


def _update(static: Static, data, w, opt_state, params: dict, points, staleness, key):
    """Update j of one replica at one grid point: average the K gradients, computed at `points` (K,
    dim), and step the optimizer; returns (w_{j+1}, optimizer state)."""
    n = static.problem.active_dim  # a padded problem's padding does not count
    dist2 = jnp.sum((points[:, :n] - w[:n]) ** 2, axis=1)
    weights = static.rule.weight(params, staleness, dist2, static.setting.P)
    g = static.problem.weighted_grad(data, points, weights, key, static.batch_size) / static.setting.K
    updates, opt_state = _optimizer(static, params).update(g, opt_state, w)
    return optax.apply_updates(w, updates), opt_state


def _measure(static: Static, data, dyn: Dynamics) -> tuple[jax.Array, jax.Array]:
    err = jax.vmap(lambda w: static.problem.error(data, w))(dyn.w)
    if static.problem.has_test:
        acc = jax.vmap(lambda w: static.problem.test_accuracy(data, w))(dyn.w)
    else:
        acc = jnp.full(err.shape, jnp.nan, err.dtype)
    return err, acc


#: updates per segment of the stale variants' ring of recent models (see _dynamics_chunk), at most:
#: the ring should stay in cache, and the per-worker table is rebuilt once a segment
SEGMENT = 16


def _divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def _segment_length(records: int, every: int) -> int:
    """Updates per segment: a whole number of records per segment, or of segments per record."""
    if every <= SEGMENT:
        return _divisor_at_most(records, SEGMENT // every) * every
    return _divisor_at_most(every, SEGMENT)


def _dynamics_chunk(static: Static, records: int, dyn: Dynamics, dkeys, j0, worker, staleness, version, data, grid: dict):
    """Advance a batch of replicas' models (leaves (R, G, ...)), every grid point, through the given
    events, replicas last (worker, staleness: (U, K, R) for U = `records` x `record_every` updates
    from update j0, a scalar); `version` (U // S, P, R): the version each worker's job in flight
    after each segment of S = _segment_length updates started on. Returns (dynamics, error (R,
    records, G), accuracy (R, records, G)).

    A gradient of staleness s applied at update j was computed at w_{j-s}. The stale variants keep two
    buffers: the per-worker table `pulled` (the models of the workers' jobs in flight at the current
    segment's start) and a ring of the S + 1 latest models, w at the segment's start and each new w
    as it is made. A gradient reads the ring if its version is in the segment, else its worker's row
    of the table; an update writes one ring row, at one index shared by the batch: a contiguous
    in-place write, where keeping the table current would rewrite its P rows every update. At the
    segment's end each worker that pulled in the segment gets the ring row of its version."""
    every, K = static.record_every, static.setting.K
    U = records * every
    S = _segment_length(records, every)
    L = S + 1  # ring rows: version v in row (v - j0) mod L, the S + 1 latest
    # update j's noise key, all drawn up front: inside the loop XLA would fuse the key's hash into the
    # noise kernel and recompute it for every coordinate
    j = (j0 + jnp.arange(U, dtype=jnp.int32)).astype(jnp.uint32)
    keys = settle(jax.vmap(lambda jj: jax.vmap(lambda k: jax.random.fold_in(fast_key(k), jj))(dkeys))(j))  # (U, R)
    impl = jax.random.key_impl(keys)
    words = jnp.moveaxis(lax.bitcast_convert_type(jax.random.key_data(keys), jnp.int32), 2, 1)  # (U, words, R)
    settled = impl == FAST_THREEFRY  # a settled key is (k1, k2, 0, 0): only two words travel
    if settled:
        words = words[:, :2]
    # each update's position in the chunk and in its segment travel with its events (the same for
    # every replica), so the loop carries no counters of its own
    u = jnp.arange(U, dtype=jnp.int32)
    pos = jnp.broadcast_to(jnp.stack([u, u % S], axis=1)[:, :, None], (U, 2, worker.shape[2]))
    events = jnp.concatenate([worker, staleness, words, pos], axis=1)  # (U, rows, R): replicas last, as made
    at = events.shape[1] - 2  # the position rows

    stale = static.setting.stale
    per_point = jax.vmap(functools.partial(_update, static, data), in_axes=(0, 0, 0, 1, None, None))  # grid points

    def per_replica(w, opt_state, table, ring, worker, staleness, key, u, in_segment):
        """u: updates since the chunk's start; in_segment: updates since the segment's start"""
        if stale:  # version j - s: in the ring if it is in the segment, else the worker's pull before it
            recent = ring[(u - staleness) % L]
            points = jnp.where((staleness <= in_segment)[:, None, None], recent, jnp.moveaxis(table, 1, 0)[worker])
        else:
            points = jnp.broadcast_to(w[None], (K, *w.shape))
        return per_point(w, opt_state, grid, points, staleness, key)

    step = jax.vmap(per_replica, in_axes=(0, 0, 0, 1 if stale else None, 1, 1, 0, 0, 0))

    # Update j's events travel in the loop state, sliced one update ahead (at the position its own
    # row holds): sliced inside the noise kernel, the dynamic indexing stopped XLA:CPU from
    # vectorising it.
    def one_update(c, _):
        (w, opt_state, table, ring), ev = c
        ev_next = lax.dynamic_index_in_dim(events, ev[at, 0] + 1, keepdims=False)  # clamped after the last
        kw = lax.bitcast_convert_type(ev[2 * K : at], jnp.uint32).T  # (R, key words)
        if settled:
            kw = jnp.concatenate([kw, jnp.zeros_like(kw)], axis=1)
        key = jax.random.wrap_key_data(kw, impl=impl)
        w, opt_state = step(w, opt_state, table, ring, ev[:K], ev[K : 2 * K], key, ev[at], ev[at + 1])
        if stale:
            ring = lax.dynamic_update_index_in_dim(ring, w, (ev[at, 0] + 1) % L, 0)
        return ((w, opt_state, table, ring), ev_next), None

    def end_segment(c, version, first):  # the table of the next segment; version (P, R); first: the segment's first update
        (w, opt_state, table, ring), ev = c
        if stale:
            version = version.T
            pulled = version >= j0 + first  # pulled in the segment
            rows = ring[(version - j0) % L, jnp.arange(version.shape[0])[:, None]]  # (R, P, G, dim)
            table = jnp.where(pulled[:, None, :, None], jnp.moveaxis(rows, 1, 2), table)
        return (w, opt_state, table, ring), ev

    def measure(c):
        return jax.vmap(lambda w: _measure(static, data, Dynamics(w, None, None)))(c[0][0])

    if stale:
        ring = jnp.zeros((L, *dyn.w.shape), dyn.w.dtype).at[0].set(dyn.w)
    else:
        ring, version = jnp.zeros((0,), dyn.w.dtype), jnp.zeros((U // S, 0), jnp.int32)
    init = ((dyn.w, dyn.opt_state, dyn.pulled, ring), events[0])
    first = S * jnp.arange(U // S, dtype=jnp.int32)
    if S % every == 0:  # a segment of S // every records

        def record(c, _):
            c, _ = lax.scan(one_update, c, None, length=every)
            return c, measure(c)

        def segment(c, xs):
            version, first = xs
            c, rec = lax.scan(record, c, None, length=S // every)
            return end_segment(c, version, first), rec

        c, (err, acc) = lax.scan(segment, init, (version, first))
        err, acc = (x.reshape(records, *x.shape[2:]) for x in (err, acc))
    else:  # a record of every // S segments

        def segment(c, xs):
            version, first = xs
            c, _ = lax.scan(one_update, c, None, length=S)
            return end_segment(c, version, first), None

        def record(c, xs):
            c, _ = lax.scan(segment, c, xs)
            return c, measure(c)

        n = every // S
        xs = (version.reshape(records, n, *version.shape[1:]), first.reshape(records, n))
        c, (err, acc) = lax.scan(record, init, xs)
    (w, opt_state, table, _), _ = c
    return Dynamics(w, table, opt_state), err.swapaxes(0, 1), acc.swapaxes(0, 1)


def _advance(static: Static, records: int, carry: Carry, src, dkeys, data, grid) -> tuple[Carry, Record]:
    """Advance a batch of replicas by `records` x `record_every` updates: their timeline first, for
    the whole batch (timing never depends on the model, and a batch of timelines vectorises across
    replicas), then their models through those events."""
    every, K = static.record_every, static.setting.K
    n = dkeys.shape[0]
    j0 = carry.timeline.update[0]  # every replica is at the same update
    S = _segment_length(records, every)
    draw = random_draw(static.delay)
    tstate, ev, version = scan_events(static.setting, draw, carry.timeline, src, records * every, S, columns=True)
    dyn, err, acc = _dynamics_chunk(static, records, carry.dynamics, dkeys, j0, ev.worker, ev.staleness, version, data, grid)
    stal = ev.staleness.reshape(records, every * K, n)
    stale_sum = jnp.sum(stal, axis=1, dtype=jnp.int32).T
    fresh = jnp.sum(stal == 0, axis=1, dtype=jnp.int32).T
    record = Record(ev.time[every - 1 :: every].T, stale_sum, fresh, err, acc)
    return Carry(tstate, dyn, stale_sum[:, -1], fresh[:, -1]), record


def _run_blocks(static: Static, records: int, block: int, carry: Carry, src, dkeys, data, grid):
    """Advance the replicas of one device by `records` x `record_every` updates, `block` replicas at a
    time (a loop over blocks, each advanced by _advance): a block's per-worker models stay in cache
    across the updates of the chunk, where all replicas at once would stream them from memory every
    update, and its timeline events are consumed right after they are made. The carry is updated in
    place, block by block."""
    n = dkeys.shape[0]
    advance = functools.partial(_advance, static, records)
    if block >= n:
        return advance(carry, src, dkeys, data, grid)

    def take(tree, b):
        return jax.tree.map(lambda x: lax.dynamic_slice_in_dim(x, b * block, block), tree)

    def put(tree, part, b):
        return jax.tree.map(lambda x, y: lax.dynamic_update_slice_in_dim(x, y, b * block, 0), tree, part)

    shape = jax.eval_shape(advance, take(carry, 0), take(src, 0), take(dkeys, 0), data, grid)[1]
    out = jax.tree.map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shape)

    def body(b, state):
        carry, out = state  # updated in place: each block is read once, then overwritten
        c, rec = advance(take(carry, b), take(src, b), take(dkeys, b), data, grid)
        return put(carry, c, b), put(out, rec, b)

    return lax.fori_loop(0, n // block, body, (carry, out))


@functools.partial(jax.jit, static_argnames=("static", "records", "block", "mesh"), donate_argnums=(2,))
def _run_chunk(static: Static, records: int, carry: Carry, src, dkeys, data, grid, block: int, mesh: Mesh | None):
    fn = functools.partial(_run_blocks, static, records, block)
    if mesh is not None:  # each device loops over its own replicas
        rep, same = PS("replica"), PS()
        fn = jax.shard_map(fn, mesh=mesh, in_specs=(rep, rep, rep, same, same), out_specs=(rep, rep), check_vma=False)
    return fn(carry, src, dkeys, data, grid)


@functools.partial(jax.jit, static_argnames=("static", "speeds", "mesh"))
def _init(static: Static, seed, replicas: jax.Array, data, grid, speeds, mesh: Mesh | None = None):
    setting = static.setting
    draw = random_draw(static.delay)
    speeds = None if speeds is None else np.asarray(speeds)

    def one(r):
        rkey = replica_key(seed, r)
        src = random_source(rkey, setting.P, speeds)
        tstate = init_state(setting, src, draw)
        dyn = jax.vmap(lambda p: _init_dynamics(static, data, p))(grid)
        zero = jnp.zeros((), jnp.int32)
        return Carry(tstate, dyn, zero, zero), src, jax.random.fold_in(rkey, 1)

    carry, src, dkeys = jax.vmap(one)(replicas)
    if mesh is not None:  # leaves that do not depend on the replica id would come out replicated
        carry, src, dkeys = lax.with_sharding_constraint((carry, src, dkeys), NamedSharding(mesh, PS("replica")))
    err, acc = jax.vmap(lambda c: _measure(static, data, c.dynamics))(carry)
    return carry, src, dkeys, err, acc


def _records_per_chunk(
    n_records: int, record_every: int, replicas: int, grid: int, dim: int, K: int, chunk: int | None,
    budget: int = CHUNK_BYTES["cpu"],
) -> int:
    """Records per compiled chunk: a divisor of n_records so every chunk has the same shape."""
    if chunk is None:
        # as many updates per call as keep the chunk's events and records within `budget` bytes: long
        # chunks amortise dispatch and each block's trip in and out of the loop state
        per_update = replicas * (4 * (2 * K + 5) + 16 * grid)
        target_updates = max(record_every, min(budget // max(per_update, 1), 50_000))
        target = max(1, target_updates // record_every)
    else:
        target = max(1, chunk // record_every)
    target = min(target, n_records)
    for d in range(target, 0, -1):
        if n_records % d == 0:
            return d
    return 1


#: bytes of replica state a block aims at: it should stay in a core's L2 cache across updates
BLOCK_BYTES = 1 << 20


def _block_size(per_device: int, state_bytes: int, block: int | None) -> int:
    """Replicas per block: about BLOCK_BYTES of state, at least 64 replicas (to amortise the fixed
    cost of each step), balanced so the blocks tile `per_device` with little padding."""
    target = block or max(64, BLOCK_BYTES // max(state_bytes, 1))
    if target >= per_device:
        return per_device
    n_blocks = -(-per_device // target)
    return -(-per_device // n_blocks)


def _mesh_and_padding(replicas: int, devices, state_bytes: int, block: int | None) -> tuple[Mesh | None, int, int]:
    """(mesh or None, padded replica count, replicas per block): padded to whole blocks per device."""
    devices = list(devices) if devices is not None else jax.local_devices()
    n_dev = max(len(devices), 1)
    per_device = -(-replicas // n_dev)
    # blocks are for CPU caches; an accelerator wants all its replicas in every kernel
    b = _block_size(per_device, state_bytes, block) if devices[0].platform == "cpu" else per_device
    padded = -(-per_device // b) * b * n_dev
    mesh = Mesh(np.asarray(devices), ("replica",)) if n_dev > 1 else None
    return mesh, padded, b


#: CPU vector width, in float32 lanes: a loop over a model of dim coordinates runs whole vectors
#: where dim is a multiple of it, and a scalar remainder for each model where not
VECTOR_LANES = 8


def padded_problem(problem: Problem, platform: str) -> Problem:
    """The problem the engine runs: on CPU, its padded view (Problem.padded) to a whole number of
    vectors where it has one and the keys are JAX's default threefry (whose draws a padded draw
    extends), else the problem itself. NoisyQuadratic(dim=100) runs as 104 coordinates in 0.81x the
    time of 100 (paired runs; benchmarks/bench.py times the roofline both ways)."""
    lanes = VECTOR_LANES * 4 // jnp.zeros(()).dtype.itemsize
    width = -(-problem.dim // lanes) * lanes
    key = jax.random.key(0)
    if platform != "cpu" or width == problem.dim or fast_key(key).dtype == key.dtype:
        return problem
    return problem.padded(width) or problem


def _hashable_speeds(s: np.ndarray | None):
    return None if s is None else tuple(float(x) for x in s)


def simulate(
    problem: Problem,
    variant: str,
    P: int,
    K: int | None = None,
    delay: DelayLaw | None = None,
    lr: Rule | None = None,
    optimizer: Optimizer | str = "sgd",
    updates: int = 1000,
    replicas: int = 100,
    record_every: int = 10,
    batch_size: int = 1,
    seed: int = 0,
    speeds=None,
    chunk: int | None = None,
    devices=None,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Simulate `replicas` runs of `variant` on `problem`, for every point of the `lr` grid.

    Returns a Result holding the per-replica records (error, time and staleness every `record_every`
    updates) with methods that aggregate them into pandas DataFrames. `progress(done, total)` is
    called after each chunk of updates. `devices` (default: all local devices) shard the replicas.
    """
    setting = resolve(variant, P, K)
    if not isinstance(delay, DelayLaw):
        raise ConfigError(f"delay={delay!r} is invalid: must be a jaxsgd.delays law, e.g. Exponential(rate=1.0).")
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem={problem!r} is invalid: must be a jaxsgd.problems problem.")
    lr = Constant(0.1) if lr is None else lr
    if not isinstance(lr, Rule):
        raise ConfigError(f"lr={lr!r} is invalid: must be a jaxsgd.lr rule, e.g. jaxsgd.lr.Constant(eta=0.1).")
    optimizer = Optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    updates = positive_int("updates", updates)
    replicas = positive_int("replicas", replicas)
    record_every = positive_int("record_every", record_every)
    batch_size = positive_int("batch_size", batch_size)
    require(updates % record_every == 0, "record_every", record_every, f"must divide updates={updates}")
    if chunk is not None:
        chunk = positive_int("chunk", chunk)
    seed = seed_int(seed)
    s = speed_pattern(speeds, setting.P)

    devices = list(devices) if devices is not None else jax.local_devices()
    require(len(devices) >= 1, "devices", devices, "must hold at least one device (None: all local devices)")
    run_problem = padded_problem(problem, devices[0].platform)
    static = Static(setting, delay, run_problem, lr.structure(), optimizer, batch_size, record_every)
    data = run_problem.data()
    grid_np = lr.grid()
    dtype = jnp.zeros(()).dtype
    grid = {k: jnp.asarray(v, jnp.int32 if k in lr.integer_fields else dtype) for k, v in grid_np.items()}
    G = lr.grid_size
    n_records = updates // record_every
    budget = chunk_budget(devices[0].platform)  # bytes of a chunk's events and records
    per_chunk = _records_per_chunk(n_records, record_every, replicas, G, problem.dim, setting.K, chunk, budget)

    state_bytes = 4 * G * (setting.P + 2) * run_problem.dim + 16 * setting.P  # per replica: w, pulled, optimizer, timeline
    mesh, padded, block = _mesh_and_padding(replicas, devices, state_bytes, None)
    ids = jnp.arange(padded, dtype=jnp.uint32)
    if mesh is not None:
        ids = jax.device_put(ids, NamedSharding(mesh, PS("replica")))

    t0 = _time.perf_counter()
    carry, src, dkeys, err0, acc0 = _init(static, seed, ids, data, grid, _hashable_speeds(s), mesh)
    platform = next(iter(dkeys.devices())).platform
    run = compile_loop(_run_chunk.lower(static, per_chunk, carry, src, dkeys, data, grid, block, mesh), platform)
    jax.block_until_ready(carry)
    compile_seconds = _time.perf_counter() - t0

    time_rec = np.empty((replicas, n_records + 1), np.float64)
    stal_rec = np.empty((replicas, n_records + 1), np.float64)
    fresh_total = np.zeros(replicas, np.float64)
    err_rec = np.empty((G, replicas, n_records + 1), np.float64)
    acc_rec = np.empty((G, replicas, n_records + 1), np.float64)
    time_rec[:, 0], stal_rec[:, 0] = 0.0, np.nan
    err_rec[:, :, 0] = np.asarray(err0)[:replicas].T
    acc_rec[:, :, 0] = np.asarray(acc0)[:replicas].T

    def keep(rec: Record, done: int) -> None:  # chunk records[done : done + per_chunk] into the host arrays
        nonlocal fresh_total
        sl = slice(done + 1, done + 1 + per_chunk)
        time_rec[:, sl] = np.asarray(rec.time)[:replicas]
        stal_rec[:, sl] = np.asarray(rec.staleness)[:replicas] / (record_every * setting.K)
        fresh_total += np.asarray(rec.fresh)[:replicas].sum(axis=1, dtype=np.float64)
        err_rec[:, :, sl] = np.moveaxis(np.asarray(rec.error)[:replicas], -1, 0)
        acc_rec[:, :, sl] = np.moveaxis(np.asarray(rec.accuracy)[:replicas], -1, 0)
        if progress is not None:
            progress((done + per_chunk) * record_every, updates)

    # each chunk is dispatched before the last one's records are copied out (dispatch returns at
    # once), so the devices compute while the host copies: they never wait on it between chunks
    t1 = _time.perf_counter()
    pending = None
    for done in range(0, n_records, per_chunk):
        carry, rec = run(carry, src, dkeys, data, grid)
        if pending is not None:
            keep(*pending)
        pending = (rec, done)
    keep(*pending)
    run_seconds = _time.perf_counter() - t1

    records = Records(
        update=np.arange(n_records + 1) * record_every,
        time=time_rec,
        staleness=stal_rec,
        error=err_rec,
        accuracy=acc_rec if problem.has_test else None,
    )
    gradients = updates * setting.K
    return Result(
        setting=setting,
        delay=delay,
        problem=problem,
        lr=lr,
        optimizer=optimizer,
        speeds=s,
        updates=updates,
        replicas=replicas,
        record_every=record_every,
        batch_size=batch_size,
        seed=seed,
        records=records,
        staleness_mean=float(np.mean(stal_rec[:, 1:])),  # every record holds the same number of gradients
        fresh_fraction=float(np.mean(fresh_total) / gradients),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        devices=1 if mesh is None else mesh.size,
    )

