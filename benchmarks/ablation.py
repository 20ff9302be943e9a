#!/usr/bin/env python
"""Where jaxsgd's time goes beyond the roofline, on the benchmark workload (benchmarks/bench.py).

Times four versions of the same run, alternating rounds (each the best of --rounds, so load drifting
over the run weighs on all alike), and prints each in ns per trajectory-update and against the
roofline:

  roofline   bench.py's bare jitted, vmapped scan of the same noise and arithmetic, on the problem
             as the engine runs it (padded to whole vectors on CPU: bench.py's roofline_padded);
  jaxsgd     jaxsgd.simulate as it is;
  no-tl      jaxsgd with the timeline replaced by events from a formula (same shapes, no random
             draws, no selection): the difference to `jaxsgd` is the timeline's cost;
  no-tl-w    also without per-worker models (every gradient at w_j, nothing written back): the
             difference to `no-tl` is the per-worker models' cost; what is left above the roofline
             is the engine's structure (blocks, events, records).

The variants swap engine internals for the duration of this script only (a measuring device, not
an API): their numbers are not simulations of anything.

    python benchmarks/ablation.py [--rounds 5] [--replicas 4096] [--updates 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)

import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.argv, _argv = sys.argv[:1], sys.argv[1:]  # bench parses its own arguments when imported
import bench  # noqa: E402

from jaxsgd import engine  # noqa: E402
from jaxsgd.variants import resolve  # noqa: E402

timeline_module = sys.modules["jaxsgd.timeline"]
REAL_EVENTS, REAL_CHUNK = engine.scan_events, engine._dynamics_chunk


def formula_events(setting, draw, state, src, length, every=None, columns=False):
    """Events of the right shapes from a formula: K distinct workers per update, staleness 3, every
    worker's version at a segment's end that segment's last (replicas last with `columns`, as the
    engine asks)."""
    n = state.clock.shape[0]
    j = jnp.arange(length, dtype=jnp.int32)[None, :, None]
    r = jnp.arange(n, dtype=jnp.int32)[:, None, None]
    worker = (j * 3 + r + 5 * jnp.arange(setting.K, dtype=jnp.int32)[None, None, :]) % setting.P
    staleness = jnp.full((n, length, setting.K), 3, jnp.int32)
    time = jnp.broadcast_to(jnp.arange(length, dtype=state.clock.dtype)[None], (n, length))
    events = timeline_module.Event(time, worker.astype(jnp.int32), staleness)
    ends = state.update[:, None] + every * jnp.arange(1, length // every + 1, dtype=jnp.int32)[None] if every else None
    version = None if every is None else jnp.broadcast_to(ends[:, :, None], (n, length // every, setting.P))
    if columns:
        events = timeline_module.Event(time.T, jnp.transpose(events.worker, (1, 2, 0)), jnp.transpose(staleness, (1, 2, 0)))
        version = None if every is None else jnp.transpose(version, (1, 2, 0))
    return (state, events) if every is None else (state, events, version)


def no_worker_models(static, *args):
    """The models advanced as if every gradient were fresh: no per-worker models read or written."""
    fresh = dataclasses.replace(static, setting=resolve("k_sync", static.setting.P, static.setting.K))
    return REAL_CHUNK(fresh, *args)


VARIANTS = {"jaxsgd": (REAL_EVENTS, REAL_CHUNK), "no-tl": (formula_events, REAL_CHUNK),
            "no-tl-w": (formula_events, no_worker_models)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--replicas", type=int, default=bench.FULL["replicas"])
    p.add_argument("--updates", type=int, default=bench.FULL["updates"])
    args = p.parse_args(_argv)
    w = dict(bench.FULL, updates=args.updates)
    roofline = bench.roofline_runner(w, args.replicas, as_engine_runs=True)[1]
    best = dict.fromkeys(["roofline", *VARIANTS], float("inf"))
    try:
        for _ in range(args.rounds):
            best["roofline"] = min(best["roofline"], roofline()[0])
            for name, (events, apply) in VARIANTS.items():
                engine.scan_events, engine._dynamics_chunk = events, apply
                engine._run_chunk.clear_cache()  # the jit cache would keep the previous variant
                best[name] = min(best[name], bench.simulate(w, args.replicas).run_seconds)
    finally:
        engine.scan_events, engine._dynamics_chunk = REAL_EVENTS, REAL_CHUNK
        engine._run_chunk.clear_cache()
    tu = args.replicas * args.updates
    ns = {k: 1e9 * v / tu for k, v in best.items()}
    print(f"{'version':10s} {'ns/traj-update':>15s} {'roofline/this':>14s}")
    for k, v in ns.items():
        print(f"{k:10s} {v:15.1f} {ns['roofline'] / v:14.3f}")
    print(f"\ntimeline {ns['jaxsgd'] - ns['no-tl']:.0f} ns, per-worker models {ns['no-tl'] - ns['no-tl-w']:.0f} ns, "
          f"structure {ns['no-tl-w'] - ns['roofline']:.0f} ns per trajectory-update (best of {args.rounds}, alternating)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
