#!/usr/bin/env python
"""Where the engine's time goes: one jaxsgd.simulate call under jax.profiler, its kernels summed by name.

    python benchmarks/profile_engine.py --replicas 16384 --updates 400 --out prof/

Prints, per kernel (fusion) name, the calls per update and the microseconds per update, largest first,
on the default backend (a GPU's kernels where there is one). With --hlo, also keeps the optimised HLO
of the compiled chunk (prof/hlo.tgz), to read which fusion is which. --blocks times the run with the
replicas advanced that many at a time (as the engine does on CPU) instead of all at once.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=16384)
    p.add_argument("--updates", type=int, default=400)
    p.add_argument("--P", type=int, default=16)
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--out", default="profile_engine")
    p.add_argument("--hlo", action="store_true", help="keep the optimised HLO of the compiled chunk")
    p.add_argument("--blocks", default="", help="comma-separated replicas-per-block to time as well")
    p.add_argument("--top", type=int, default=40)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="profile_engine_")  # the raw dump and trace, many files: only summaries go to --out
    dump = os.path.join(work, "dump")
    if a.hlo:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={dump} "
                                   "--xla_dump_hlo_module_re=.*run_chunk.* --xla_dump_hlo_pass_re=^$").strip()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import jax

    import jaxsgd
    from jaxsgd import engine
    from jaxsgd.delays import Exponential
    from jaxsgd.lr import Constant
    from jaxsgd.problems import NoisyQuadratic

    def sim(**kw):
        return jaxsgd.simulate(NoisyQuadratic(dim=100), "k_async", P=a.P, K=a.K, delay=Exponential(1.0), lr=Constant(0.1),
                               updates=a.updates, replicas=a.replicas, record_every=10, batch_size=8, seed=0, **kw)

    first = sim()
    print(f"{jax.default_backend()} {jax.devices()[0].device_kind}: {a.replicas} replicas x {a.updates} updates, "
          f"compile {first.compile_seconds:.2f} s, run {first.run_seconds:.3f} s "
          f"({1e9 * first.run_seconds / (a.replicas * a.updates):.1f} ns per trajectory-update)", flush=True)
    trace_dir = os.path.join(work, "trace")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        res = sim()
    files = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
    t = json.load(gzip.open(files[0]))
    events = t["traceEvents"] if isinstance(t, dict) else t
    procs = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device_pids = {pid for pid, name in procs.items() if any(w in name.lower() for w in ("gpu", "tpu", "device"))}
    count, total = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        if device_pids and e.get("pid") not in device_pids:
            continue
        name = e.get("name", "")
        count[name] += 1
        total[name] += e.get("dur", 0)
    U = a.updates
    lines = [f"traced run {res.run_seconds:.3f} s = {1e6 * res.run_seconds / U:.1f} us per update; device processes: "
             f"{sorted(procs[p] for p in device_pids) or 'none (host threads counted)'}",
             f"kernel time {sum(total.values()) / U:.1f} us per update over {sum(count.values()) / U:.1f} kernels per update",
             f"{'us/update':>10s} {'calls/update':>12s}  kernel"]
    for name in sorted(total, key=lambda k: -total[k])[: a.top]:
        lines.append(f"{total[name] / U:10.2f} {count[name] / U:12.2f}  {name[:150]}")
    text = "\n".join(lines)
    print(text, flush=True)
    with open(os.path.join(a.out, "kernels.txt"), "w") as f:
        f.write(text + "\n")
    os.replace(files[0], os.path.join(a.out, "trace.json.gz"))

    for b in [int(x) for x in a.blocks.split(",") if x]:
        orig = engine._mesh_and_padding

        def forced(replicas, devices, state_bytes, block, _b=b, orig=orig):
            mesh, _, _ = orig(replicas, devices, state_bytes, block)
            n_dev = 1 if mesh is None else mesh.devices.size
            per = -(-replicas // n_dev)
            bb = min(_b, per)
            return mesh, -(-per // bb) * bb * n_dev, bb

        engine._mesh_and_padding = forced
        try:
            sim()
            t0 = time.perf_counter()
            r = sim()
            print(f"blocks of {b}: run {r.run_seconds:.3f} s ({1e9 * r.run_seconds / (a.replicas * U):.1f} ns/tu), "
                  f"wall {time.perf_counter() - t0:.2f} s", flush=True)
        finally:
            engine._mesh_and_padding = orig

    if a.hlo:
        with tarfile.open(os.path.join(a.out, "hlo.tgz"), "w:gz") as tar:
            for f in glob.glob(f"{dump}/*after_optimizations*.txt"):
                tar.add(f, arcname=os.path.basename(f))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
