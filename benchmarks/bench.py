#!/usr/bin/env python
"""Benchmark (issue 5): jaxsgd against what a user would write, on one workload, in one process.

Four implementations of the same simulation -- NQM (dim 100, batch 8), k_async with P = 16, K = 4,
exponential compute times, 2,000 updates, the error F(w_j) - F* recorded every 10 updates:

1. naive     a per-trajectory Python loop: a heapq event simulation plus NumPy SGD;
2. numpy     NumPy vectorised over replicas (timeline included), a Python loop over updates;
3. roofline  a bare jitted, vmapped lax.scan that draws the same gradient noise and does the same
             arithmetic as the engine, with no timeline and no staleness bookkeeping: the ceiling;
4. jaxsgd    jaxsgd.simulate, timeline included (compile time reported apart).

All four draw ONE N(0, I) vector per update for the K gradients' noise (sum_l eps_l / K has the law of
eps / sqrt(K): the identity NoisyQuadratic.weighted_grad uses), so they do the same work. Throughput
is trajectory-updates per second (replicas x updates / run seconds); each timing is the best of
--repeat runs (the machine may be shared), and the roofline and jaxsgd runs alternate so that load
drifting over the run weighs on both alike. Also reported: jaxsgd.timeline alone, run time against
replicas, P and updates, and peak resident memory (each case alone, in a subprocess). --big runs
10,000 replicas x 5,000 updates with P = 256, K = 16 in a subprocess and reports its peak memory.

    python benchmarks/bench.py               # the full benchmark (a few minutes on 2 cores)
    python benchmarks/bench.py --quick       # a smoke run with tiny sizes
    python benchmarks/bench.py --big         # also the 10,000 x 5,000, P = 256 case

Results are printed and written to bench_results.json (or --out).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, a few seconds of work")
    p.add_argument("--big", action="store_true", help="also run the 10,000 x 5,000, P=256, K=16 case (subprocess)")
    p.add_argument("--out", default="bench_results.json", help="JSON file to write (default: ./bench_results.json)")
    p.add_argument("--devices", type=int, default=_cores(), help="CPU devices to shard replicas over (default: cores)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per method; the best counts (default 5, quick 1)")
    p.add_argument("--replicas", type=int, default=None, help="replicas of the jaxsgd and roofline runs (default 4096)")
    p.add_argument("--updates", type=int, default=None, help="updates of every run (default 2000)")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling tables")
    p.add_argument("--no-memory", action="store_true", help="skip the per-case peak-memory subprocesses")
    # internal: run one case alone and print its JSON (used for per-case peak memory)
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--case-args", default="{}", help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = parse_args()

import jax  # noqa: E402

# before JAX initialises its backends: one CPU device per core, so simulate shards replicas over all cores
jax.config.update("jax_num_cpu_devices", max(1, ARGS.devices))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxsgd  # noqa: E402
from jaxsgd.delays import Exponential  # noqa: E402
from jaxsgd.engine import padded_problem  # noqa: E402
from jaxsgd.lr import Constant  # noqa: E402
from jaxsgd.problems import NoisyQuadratic  # noqa: E402
from jaxsgd.timeline import compile_loop, fast_key, replica_key  # noqa: E402

# ------------------------------------------------------------------------------------------ workload

FULL = dict(dim=100, batch=8, variant="k_async", P=16, K=4, rate=1.0, eta=0.1, updates=2000, replicas=4096,
            record_every=10, seed=0, numpy_replicas=1024, naive_replicas=8)
QUICK = dict(FULL, updates=100, replicas=64, numpy_replicas=32, naive_replicas=2)
BIG = dict(dim=100, batch=8, variant="k_async", P=256, K=16, rate=1.0, eta=0.1, updates=5000, replicas=10_000,
           record_every=10, seed=0)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB: VmHWM where Linux reports it (ru_maxrss there
    survives exec, so a child started by a big parent would report the parent's peak), else
    ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024


def device_peak_mb() -> float | None:
    """Peak memory in use on the first accelerator, MB, where its runtime reports it (GPU, TPU); None on CPU,
    whose memory is the process's own (peak_rss_mb)."""
    dev = jax.local_devices()[0]
    if dev.platform == "cpu":
        return None
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # a runtime without memory statistics
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def problem_of(w: dict) -> NoisyQuadratic:
    return NoisyQuadratic(dim=w["dim"])


def best_of(fn, repeat: int):
    """Run fn() `repeat` times; returns (best seconds, last result). fn returns (seconds, result)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        s, out = fn()
        best = min(best, s)
    return best, out


# ------------------------------------------------------------------------------------------ 1. naive


def naive(w: dict, replicas: int) -> dict:
    """Per trajectory: a heap of (finish time, worker), the K first distinct pushers, NumPy SGD."""
    prob = problem_of(w)
    h = prob.curvatures()
    P, K, m, eta, dim, U, every = w["P"], w["K"], w["batch"], w["eta"], w["dim"], w["updates"], w["record_every"]
    noise = np.sqrt(K * prob.sigma2 / m) * np.sqrt(h)  # the K gradients' noise: one draw, sqrt(K) larger
    finals, stale_sum = [], 0
    t0 = time.perf_counter()
    for r in range(replicas):
        rng = np.random.default_rng([w["seed"], r])
        wv = np.full(dim, prob.init)
        pulled = np.tile(wv, (P, 1))
        version = [0] * P
        heap = [(rng.exponential(1.0 / w["rate"]), i) for i in range(P)]
        heapq.heapify(heap)
        errors = []
        for j in range(U):
            arrivals = [heapq.heappop(heap) for _ in range(K)]  # K distinct workers: pushers wait
            t = arrivals[-1][0]
            total = np.zeros(dim)
            for _, i in arrivals:
                total += pulled[i]
                stale_sum += j - version[i]
            g = h * total + noise * rng.standard_normal(dim)
            wv = wv - (eta / K) * g
            for _, i in arrivals:  # the pushers pull w_{j+1} and start again
                pulled[i] = wv
                version[i] = j + 1
                heapq.heappush(heap, (t + rng.exponential(1.0 / w["rate"]), i))
            if (j + 1) % every == 0:
                errors.append(0.5 * np.sum(h * wv * wv))
        finals.append(errors[-1])
    seconds = time.perf_counter() - t0
    return dict(seconds=seconds, replicas=replicas, final_error_mean=float(np.mean(finals)),
                staleness_mean=stale_sum / (replicas * U * K))


# ------------------------------------------------------------------------------------------ 2. numpy


def numpy_vectorised(w: dict, replicas: int) -> dict:
    """All replicas at once (float32, like the engine): argpartition picks each replica's K first
    finishers; fancy indexing gathers their pulled models and scatters w_{j+1} back."""
    prob = problem_of(w)
    h = prob.curvatures().astype(np.float32)
    R, P, K, m, eta, dim, U, every = replicas, w["P"], w["K"], w["batch"], w["eta"], w["dim"], w["updates"], w["record_every"]
    noise = (np.sqrt(K * prob.sigma2 / m) * np.sqrt(h)).astype(np.float32)
    step = np.float32(eta / K)
    rng = np.random.default_rng(w["seed"])
    rows = np.arange(R)[:, None]
    wv = np.full((R, dim), prob.init, np.float32)
    pulled = np.repeat(wv[:, None, :], P, axis=1)
    version = np.zeros((R, P), np.int32)
    finish = rng.standard_exponential((R, P), dtype=np.float32) / np.float32(w["rate"])
    errors = np.empty((R, U // every), np.float32)
    stale_sum = 0
    t0 = time.perf_counter()
    for j in range(U):
        idx = np.argpartition(finish, K - 1, axis=1)[:, :K]  # (R, K): the K first to finish, any order
        t = np.take_along_axis(finish, idx, axis=1).max(axis=1)
        stale_sum += int(j * R * K - version[rows, idx].sum())
        g = h * pulled[rows, idx].sum(axis=1) + noise * rng.standard_normal((R, dim), dtype=np.float32)
        wv -= step * g
        pulled[rows, idx] = wv[:, None, :]
        version[rows, idx] = j + 1
        finish[rows, idx] = t[:, None] + rng.standard_exponential((R, K), dtype=np.float32) / np.float32(w["rate"])
        if (j + 1) % every == 0:
            errors[:, (j + 1) // every - 1] = 0.5 * (h * wv * wv).sum(axis=1)
    seconds = time.perf_counter() - t0
    return dict(seconds=seconds, replicas=R, final_error_mean=float(errors[:, -1].mean()),
                staleness_mean=stale_sum / (R * U * K))


# ------------------------------------------------------------------------------------------ 3. roofline


def roofline_runner(w: dict, replicas: int, as_engine_runs: bool = False):
    """A compiled function: every replica does w <- w - eta/K * weighted_grad(K copies of w) for
    `updates` updates, with the engine's noise keys and draw (update j: normal(fold_in(stream 1, j))),
    the error recorded every record_every updates; replicas sharded over the devices. No timeline,
    no per-worker models, no staleness. `as_engine_runs`: on the problem as the engine runs it (its padded
    view on CPU, jaxsgd.engine.padded_problem), the same numbers drawn and the same arithmetic on the
    problem's own coordinates."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as PS

    devices = jax.local_devices()
    prob = problem_of(w)
    if as_engine_runs:
        prob = padded_problem(prob, devices[0].platform)
    data = prob.data()
    K, m, eta, dim, U, every = w["K"], w["batch"], w["eta"], prob.dim, w["updates"], w["record_every"]
    padded = -(-replicas // len(devices)) * len(devices)

    def one(r):
        dkey = jax.random.fold_in(replica_key(w["seed"], r), 1)  # the engine's noise stream

        def update(c, _):
            wv, j = c
            points = jnp.broadcast_to(wv, (K, dim))
            g = prob.weighted_grad(data, points, jnp.ones(K, wv.dtype), jax.random.fold_in(fast_key(dkey), j), m) / K
            return (wv - eta * g, j + 1), None

        def record(c, _):
            c, _ = jax.lax.scan(update, c, None, length=every)
            return c, prob.error(data, c[0])

        _, errors = jax.lax.scan(record, (prob.init_params(data), jnp.zeros((), jnp.int32)), None, length=U // every)
        return errors

    fn = jax.vmap(one)
    if len(devices) > 1:
        mesh = Mesh(np.asarray(devices), ("replica",))
        fn = jax.shard_map(fn, mesh=mesh, in_specs=PS("replica"), out_specs=PS("replica"), check_vma=False)
        ids = jax.device_put(jnp.arange(padded, dtype=jnp.uint32), NamedSharding(mesh, PS("replica")))
    else:
        ids = jnp.arange(padded, dtype=jnp.uint32)
    t0 = time.perf_counter()
    compiled = compile_loop(jax.jit(fn).lower(ids), devices[0].platform)  # the engine's compiler options
    compile_seconds = time.perf_counter() - t0

    def run():
        t = time.perf_counter()
        errors = np.asarray(compiled(ids))[:replicas]
        return time.perf_counter() - t, errors

    return compile_seconds, run


def roofline(w: dict, replicas: int, repeat: int, as_engine_runs: bool = False) -> dict:
    compile_seconds, run = roofline_runner(w, replicas, as_engine_runs)
    seconds, errors = best_of(run, repeat)
    return dict(seconds=seconds, replicas=replicas, compile_seconds=compile_seconds,
                final_error_mean=float(errors[:, -1].mean()), staleness_mean=0.0)


# ------------------------------------------------------------------------------------------ 4. jaxsgd


def simulate(w: dict, replicas: int | None = None, **over) -> jaxsgd.Result:
    w = {**w, **over}
    return jaxsgd.simulate(problem_of(w), w["variant"], P=w["P"], K=w["K"], delay=Exponential(w["rate"]),
                           lr=Constant(w["eta"]), updates=w["updates"], replicas=replicas or w["replicas"],
                           record_every=w["record_every"], batch_size=w["batch"], seed=w["seed"])


def _engine_report(first: jaxsgd.Result, runs: list) -> dict:
    best = min(runs, key=lambda r: r.run_seconds)
    return dict(seconds=best.run_seconds, replicas=best.replicas, compile_seconds=first.compile_seconds,
                first_call_seconds=first.compile_seconds + first.run_seconds, devices=best.devices,
                final_error_mean=float(best.records.error[0, :, -1].mean()), staleness_mean=best.staleness_mean)


def roofline_and_engine(w: dict, replicas: int, repeat: int) -> tuple[dict, dict | None, dict]:
    """The roofline, the padded roofline (None where the engine does not pad) and jaxsgd, timed in
    alternation (roofline, padded roofline, jaxsgd, roofline, ...) and each the best of `repeat`: on
    a shared machine the load drifts, and alternating exposes all to the same drift, so their ratios
    are not an artefact of which ran in a quiet minute."""
    pads = padded_problem(problem_of(w), jax.local_devices()[0].platform).dim != w["dim"]
    runners = {"roofline": roofline_runner(w, replicas)}
    if pads:
        runners["roofline_padded"] = roofline_runner(w, replicas, as_engine_runs=True)
    first = simulate(w, replicas)  # compiles; its run counts too
    best, errors, runs = dict.fromkeys(runners, float("inf")), {}, [first]
    for i in range(max(1, repeat)):
        for name, (_, run) in runners.items():
            s, errors[name] = run()
            best[name] = min(best[name], s)
        if i > 0:
            runs.append(simulate(w, replicas))
    roofs = {name: dict(seconds=best[name], replicas=replicas, compile_seconds=runners[name][0],
                        final_error_mean=float(errors[name][:, -1].mean()), staleness_mean=0.0) for name in runners}
    return roofs["roofline"], roofs.get("roofline_padded"), _engine_report(first, runs)


def timeline_alone(w: dict, replicas: int, repeat: int) -> dict:
    """jaxsgd.timeline (k_async, the workload's P, K, law): the first call compiles, then the best run."""
    def call():
        t = time.perf_counter()
        tl = jaxsgd.timeline(w["variant"], w["P"], w["K"], delay=Exponential(w["rate"]), updates=w["updates"],
                             replicas=replicas, seed=w["seed"])
        return time.perf_counter() - t, tl

    first, tl = call()
    seconds, tl = best_of(call, repeat)
    return dict(seconds=seconds, first_call_seconds=first, replicas=replicas, updates=w["updates"],
                trajectory_updates_per_second=replicas * w["updates"] / seconds,
                staleness_mean=tl.staleness_mean, time_per_update=tl.time_per_update)


# ------------------------------------------------------------------------------------------ scaling


def scaling(w: dict, quick: bool) -> dict:
    """jaxsgd run time against replicas, P (K = P/4) and updates, the other two at a base value."""
    base = dict(w, replicas=128 if quick else 2048, updates=100 if quick else 1000)
    axes = {
        "replicas": [64, 128] if quick else [1024, 2048, 4096, 8192, 16384],
        "P": [8, 16] if quick else [4, 8, 16, 32, 64, 128, 256],
        "updates": [100, 200] if quick else [500, 1000, 2000, 4000],
    }
    out = {}
    for axis, values in axes.items():
        rows = []
        for v in values:
            over = {axis: v}
            if axis == "P":
                over["K"] = max(1, v // 4)
            cfg = dict(base, **over)
            res = simulate(cfg, cfg["replicas"])
            tu = cfg["replicas"] * cfg["updates"]
            rows.append(dict(value=v, K=cfg["K"], replicas=cfg["replicas"], updates=cfg["updates"],
                             run_seconds=res.run_seconds, compile_seconds=res.compile_seconds,
                             ns_per_trajectory_update=1e9 * res.run_seconds / tu))
        first = rows[0]
        for r in rows:
            r["seconds_relative"] = r["run_seconds"] / first["run_seconds"]
            r["work_relative"] = (r["replicas"] * r["updates"]) / (first["replicas"] * first["updates"])
        out[axis] = rows
    return out


# ------------------------------------------------------------------------------------------ subprocess cases


def run_case(case: str, kw: dict) -> dict:
    """One case alone in this process (for its peak memory): prints nothing, returns a dict."""
    w = kw["workload"]
    before = peak_rss_mb()
    t = time.perf_counter()
    if case == "naive":
        out = naive(w, kw["replicas"])
    elif case == "numpy":
        out = numpy_vectorised(w, kw["replicas"])
    elif case == "roofline":
        out = roofline(w, kw["replicas"], 1)
    elif case in ("jaxsgd", "big"):
        res = simulate(w, kw["replicas"])
        out = dict(seconds=res.run_seconds, compile_seconds=res.compile_seconds, replicas=res.replicas,
                   updates=res.updates, devices=res.devices, final_error_mean=float(res.records.error[0, :, -1].mean()),
                   staleness_mean=res.staleness_mean, trajectory_updates_per_second=res.trajectory_updates_per_second)
    elif case == "timeline":
        out = timeline_alone(w, kw["replicas"], 1)
    elif case == "import":  # the floor: Python, JAX, jaxsgd and the CPU devices, nothing run
        jax.block_until_ready(jnp.zeros(3) + 1)
        out = dict(seconds=0.0)
    else:
        raise SystemExit(f"unknown case {case!r}")
    out["wall_seconds"] = time.perf_counter() - t
    out["peak_rss_mb_before"] = before
    out["peak_rss_mb"] = peak_rss_mb()
    out["device_peak_mb"] = device_peak_mb()
    return out


def subprocess_case(case: str, kw: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", case, "--case-args", json.dumps(kw),
           "--devices", str(ARGS.devices)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return dict(error=f"exit {proc.returncode}: {proc.stderr[-2000:]}", wall_seconds=time.perf_counter() - t)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ report


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return dict(cpu=cpu, cores=_cores(), memory_gb=mem_gb, platform=platform.platform(), python=platform.python_version(),
                jax=jax.__version__, numpy=np.__version__, backend=jax.default_backend(),
                devices=[str(d) for d in jax.local_devices()], load_average_at_start=load)


def write_report(out: Path, report: dict) -> None:
    """Write the JSON report whole or not at all (a temporary file renamed over the old one)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out)


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:8.3f} M" if x >= 1e5 else f"{x / 1e3:8.1f} k"


def main() -> int:
    if ARGS.case:
        print(json.dumps(run_case(ARGS.case, json.loads(ARGS.case_args))))
        return 0

    w = dict(QUICK if ARGS.quick else FULL)
    if ARGS.replicas:
        w["replicas"] = ARGS.replicas
    if ARGS.updates:
        w["updates"] = ARGS.updates
    repeat = ARGS.repeat or (1 if ARGS.quick else 5)
    report: dict = dict(machine=machine(), command=" ".join([Path(sys.executable).name, *sys.argv]), quick=ARGS.quick,
                        workload=w, repeat=repeat)
    print(f"jaxsgd benchmark on {report['machine']['cpu']} ({report['machine']['cores']} cores), "
          f"{len(jax.local_devices())} {jax.default_backend()} device(s), jax {jax.__version__}")
    print(f"workload: NQM dim {w['dim']}, batch {w['batch']}, {w['variant']} P={w['P']} K={w['K']}, exponential "
          f"delays, {w['updates']} updates, error every {w['record_every']}; best of {repeat}\n", flush=True)

    methods: dict = {}
    t_all = time.perf_counter()
    print("naive ...", end=" ", flush=True)
    methods["naive"] = naive(w, w["naive_replicas"])
    print("numpy ...", end=" ", flush=True)
    _, methods["numpy"] = best_of(lambda: (lambda r: (r["seconds"], r))(numpy_vectorised(w, w["numpy_replicas"])), repeat)
    print("roofline and jaxsgd, alternating ...", end=" ", flush=True)
    methods["roofline"], roof_padded, jaxsgd_run = roofline_and_engine(w, w["replicas"], repeat)
    if roof_padded is not None:
        methods["roofline_padded"] = roof_padded
    methods["jaxsgd"] = jaxsgd_run
    print("timeline ...", flush=True)
    report["timeline"] = timeline_alone(w, w["replicas"], repeat)
    for m in methods.values():
        m["updates"] = w["updates"]
        m["trajectory_updates_per_second"] = m["replicas"] * w["updates"] / m["seconds"]
        m["ns_per_trajectory_update"] = 1e9 / m["trajectory_updates_per_second"]
    report["methods"] = methods
    rate = {k: v["trajectory_updates_per_second"] for k, v in methods.items()}
    report["ratios"] = {
        "jaxsgd_over_roofline": rate["jaxsgd"] / rate["roofline"],
        "jaxsgd_over_numpy": rate["jaxsgd"] / rate["numpy"],
        "jaxsgd_over_naive": rate["jaxsgd"] / rate["naive"],
        "numpy_over_naive": rate["numpy"] / rate["naive"],
        "timeline_over_jaxsgd": report["timeline"]["trajectory_updates_per_second"] / rate["jaxsgd"],
    }
    if "roofline_padded" in rate:
        report["ratios"]["jaxsgd_over_roofline_padded"] = rate["jaxsgd"] / rate["roofline_padded"]
    report["peak_rss_mb_main_process"] = peak_rss_mb()
    report["device_peak_mb_main_process"] = device_peak_mb()

    print(f"\n{'method':15s} {'replicas':>8s} {'run s':>8s} {'traj-updates/s':>15s} {'ns/traj-update':>15s} "
          f"{'jaxsgd is x':>11s} {'final error':>11s} {'staleness':>9s}")
    for k, v in methods.items():
        print(f"{k:15s} {v['replicas']:8d} {v['seconds']:8.3f} {fmt_rate(v['trajectory_updates_per_second']):>15s} "
              f"{v['ns_per_trajectory_update']:15.1f} {rate['jaxsgd'] / rate[k]:11.2f} {v['final_error_mean']:11.5f} "
              f"{v['staleness_mean']:9.3f}")
    j, tl = methods["jaxsgd"], report["timeline"]
    print(f"\njaxsgd: compile {j['compile_seconds']:.2f} s (first call {j['first_call_seconds']:.2f} s), "
          f"{j['devices']} device(s); roofline compile {methods['roofline']['compile_seconds']:.2f} s")
    print(f"ratios: jaxsgd/roofline {report['ratios']['jaxsgd_over_roofline']:.2f}, jaxsgd/numpy "
          f"{report['ratios']['jaxsgd_over_numpy']:.2f}, jaxsgd/naive {report['ratios']['jaxsgd_over_naive']:.1f}")
    if "jaxsgd_over_roofline_padded" in report["ratios"]:
        print(f"        jaxsgd/roofline_padded {report['ratios']['jaxsgd_over_roofline_padded']:.2f} (the roofline on the "
              f"padded problem the engine runs on CPU, {padded_problem(problem_of(w), 'cpu').dim} coordinates: what "
              "the timeline and staleness bookkeeping cost)")
    print(f"timeline alone (jaxsgd.timeline, {tl['replicas']} x {tl['updates']}, NumPy arrays out): "
          f"{tl['seconds']:.3f} s, {fmt_rate(tl['trajectory_updates_per_second']).strip()} traj-updates/s "
          f"(first call with compile {tl['first_call_seconds']:.2f} s)", flush=True)

    if not ARGS.no_scaling:
        print("\nscaling (jaxsgd run seconds; linear growth = seconds_relative tracks work_relative):", flush=True)
        report["scaling"] = scaling(w, ARGS.quick)
        for axis, rows in report["scaling"].items():
            print(f"  {axis:8s} " + "  ".join(
                f"{r['value']}: {r['run_seconds']:.3f}s ({r['ns_per_trajectory_update']:.0f} ns/tu)" for r in rows))

    if not ARGS.no_memory:
        print("\npeak resident memory, each case alone in a subprocess:", flush=True)
        mem = {}
        sizes = {"import": 0, "naive": w["naive_replicas"], "numpy": w["numpy_replicas"], "roofline": w["replicas"],
                 "jaxsgd": w["replicas"], "timeline": w["replicas"]}
        if ARGS.quick:  # the smoke run checks the mechanism only
            sizes = {k: sizes[k] for k in ("import", "jaxsgd")}
        for case, r in sizes.items():
            mem[case] = subprocess_case(case, dict(workload=w, replicas=r), timeout=900)
            dev_mb = mem[case].get("device_peak_mb")
            on_device = "" if dev_mb is None else f", {dev_mb:8.0f} MB on the {jax.default_backend()}"
            print(f"  {case:10s} {r:6d} replicas: {mem[case].get('peak_rss_mb', float('nan')):8.0f} MB resident{on_device}",
                  flush=True)
        report["memory"] = mem

    report["targets"] = {
        "jaxsgd_at_least_70pct_of_roofline": report["ratios"]["jaxsgd_over_roofline"] >= 0.7,
        "jaxsgd_at_least_4x_numpy": report["ratios"]["jaxsgd_over_numpy"] >= 4,
        "jaxsgd_at_least_15x_naive": report["ratios"]["jaxsgd_over_naive"] >= 15,
        "compile_under_5s": methods["jaxsgd"]["compile_seconds"] < 5,
    }
    out = Path(ARGS.out)
    report["total_seconds"] = time.perf_counter() - t_all
    write_report(out, report)  # what is measured so far survives a big case that fails or is stopped

    if ARGS.big:
        print(f"\nbig case: {BIG['replicas']} replicas x {BIG['updates']} updates, {BIG['variant']} P={BIG['P']} "
              f"K={BIG['K']}, dim {BIG['dim']} (subprocess) ...", flush=True)
        big = subprocess_case("big", dict(workload=BIG, replicas=BIG["replicas"]), timeout=3600)
        report["big"] = dict(workload=BIG, **big)
        if "error" in big:
            print("  failed:", big["error"])
        else:
            rate_big = fmt_rate(big["trajectory_updates_per_second"]).strip()
            print(f"  wall {big['wall_seconds']:.1f} s (compile {big['compile_seconds']:.1f} s, run {big['seconds']:.1f} s), "
                  f"peak RSS {big['peak_rss_mb']:.0f} MB, {rate_big} traj-updates/s"
                  + ("" if big.get("device_peak_mb") is None else
                     f", peak {big['device_peak_mb']:.0f} MB on the {jax.default_backend()}"))

    if "big" in report and "peak_rss_mb" in report["big"]:
        report["targets"]["big_case_peak_rss_under_4gb"] = report["big"]["peak_rss_mb"] < 4096
    report["total_seconds"] = time.perf_counter() - t_all
    write_report(out, report)
    print(f"\ntargets: {', '.join(f'{k}={v}' for k, v in report['targets'].items())}")
    print(f"wrote {out} ({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
