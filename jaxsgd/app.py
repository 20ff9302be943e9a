"""One job of the application: run `simulate` for a Job (library objects, built by config.build), tabulate
and plot the result, write the outputs (summary.json, curves.parquet, curves_time.parquet,
[replicas.parquet], figure.png) atomically, and log one line with the key numbers. No omegaconf here."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import __version__, theory
from .delays import DelayLaw
from .engine import simulate
from .errors import ConfigError
from .lr import Optimizer, Rule
from .outputs import cell, plain, write_figure, write_json, write_parquet
from .problems import Problem
from .results import QUANTILES, Result
from .variants import Setting

__all__ = ["Job", "Runtime", "configure_jax", "run", "key_columns", "tables", "summarise", "finished", "versions", "FILES"]

log = logging.getLogger(__name__)

#: CPU devices made when `devices` is not set: one per core, at most this many.
MAX_CPU_DEVICES = 8
#: What one job writes, in its output directory (replicas.parquet only with save_replicas=true).
FILES = ("summary.json", "curves.parquet", "curves_time.parquet", "replicas.parquet", "figure.png")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How JAX runs: set before any JAX computation (see app.configure_jax)."""

    precision: int  # 32 or 64
    devices: int | None  # local devices to shard replicas over (None: all)
    compilation_cache: str | None  # JAX's persistent compilation cache directory (None: off)


@dataclasses.dataclass(frozen=True)
class Job:
    """One simulation, as library objects: what `app.run` needs and nothing from omegaconf."""

    setting: Setting
    delay: DelayLaw
    problem: Problem
    lr: Rule
    optimizer: Optimizer
    updates: int
    replicas: int
    record_every: int
    batch_size: int
    seed: int
    speeds: Any  # None, a pattern name, or a tuple of P factors (as delays.speeds accepts)
    chunk: int | None
    target_error: float | None
    save_replicas: bool
    figure: bool
    progress: bool
    runtime: Runtime
    config: dict  # the resolved config as plain containers (for summary.json)
    notes: tuple[str, ...] = ()  # remarks worth a log line (e.g. a K that a variant alias overrides)
    resume: bool = False  # skip the job when its output directory holds finished results of the same config
    config_hash: str = ""  # hash of what determines the results (config.config_hash), kept in summary.json


def configure_jax(rt: Runtime) -> None:
    """Apply the runtime settings; call before any JAX computation of the process.

    float64 when precision is 64; on the CPU, one device per core (at most MAX_CPU_DEVICES, or
    `devices`) so replicas shard over every core: that only takes effect before JAX starts its backend,
    i.e. for the first job of a process. A compilation cache directory makes later runs skip compiling.
    """
    jax.config.update("jax_enable_x64", rt.precision == 64)
    try:
        jax.config.update("jax_num_cpu_devices", rt.devices or min(os.cpu_count() or 1, MAX_CPU_DEVICES))
    except RuntimeError:  # the backend is up already (a later job of a sweep in the same process)
        pass
    jax.config.update("jax_compilation_cache_dir", rt.compilation_cache)
    if rt.compilation_cache:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _devices(job: Job) -> list:
    """The local devices to shard the replicas over: `devices` of them (default all), at most one per replica."""
    devices = jax.local_devices()
    return devices[: min(job.runtime.devices or len(devices), job.replicas)]


# --------------------------------------------------------------------------------------------------
# tables


def _fields(obj, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        if f.init and f.name not in skip:
            value = getattr(obj, f.name)
            if f.name.endswith("kwargs"):  # ((key, value), ...) pairs
                out.update({f"{f.name}.{k}": v for k, v in value})
            else:
                out[f.name] = value
    return out


def key_columns(job: Job) -> dict[str, Any]:
    """The settings that give a result its meaning, named as config keys: variant, P, K (as run), delay,
    delay.<param>, problem, problem.<param>, lr, lr.<param> (except grid fields, which are per row),
    optimizer, optimizer.kwargs.<k>, batch_size, speeds."""
    s = job.setting
    keys: dict[str, Any] = {"variant": s.name, "P": s.P, "K": s.K}
    groups = (
        ("delay", job.delay, job.delay.params()),
        ("problem", job.problem, job.problem.params()),
        ("lr", job.lr, _fields(job.lr, skip=job.lr.grid_fields)),
        ("optimizer", job.optimizer, _fields(job.optimizer, skip=("name",))),
    )
    for group, obj, params in groups:
        keys[group] = obj.name
        keys.update({f"{group}.{k}": v for k, v in params.items()})
    keys["batch_size"] = job.batch_size
    keys["speeds"] = job.speeds
    return {k: cell(v) for k, v in keys.items()}


def _grid_names(job: Job) -> dict[str, str]:
    return {f: f"lr.{f}" for f in job.lr.grid_fields}


def _with_keys(df: pd.DataFrame, job: Job, keys: Mapping[str, Any]) -> pd.DataFrame:
    df = df.rename(columns=_grid_names(job))
    front = pd.DataFrame({k: [v] * len(df) for k, v in keys.items()}, index=df.index)
    return pd.concat([front, df], axis=1)


def _theory_error(job: Job, result: Result, updates: np.ndarray) -> np.ndarray | None:
    """(grid, n) exact E[F(w_j)] at (fractional) update counts, where the problem has the exact recursion
    (SPEC §6: staleness-free variants, plain SGD with a constant rate); else None."""
    expected = getattr(job.problem, "expected_error", None)
    plain_sgd = job.optimizer.name == "sgd" and not job.optimizer.kwargs
    if job.setting.stale or expected is None or job.lr.name != "constant" or job.lr.schedule or not plain_sgd:
        return None
    etas = result.grid["eta"].to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # an unstable rate: the exact error overflows to inf
        return np.stack([expected(float(eta), job.setting.K, job.batch_size, updates) for eta in etas])


def _time_grid(result: Result) -> np.ndarray:
    """Result.time_grid() (evenly spaced up to the earliest final time), plus as many log-spaced times from
    the first record on, so that the start of a run is resolved on a log time axis too."""
    even = result.time_grid()
    first = float(np.min(result.records.time[:, 1])) if result.records.time.shape[1] > 1 else 0.0
    if not 0 < first < even[-1]:
        return even
    return np.unique(np.concatenate([even, np.geomspace(first, even[-1], len(even))]))


def tables(job: Job, result: Result, keys: Mapping[str, Any], time_per_update: float) -> dict[str, pd.DataFrame]:
    """curves, curves_time and replicas tables with the key columns first; `error_theory` holds the exact
    expected error where one exists (against time at the last record before J = t / time_per_update), else NaN."""
    curves = result.curves()
    times = _time_grid(result)
    curves_time = result.curves_time(times)
    exact_up = _theory_error(job, result, result.records.update)
    # the error at time t is that after the last *recorded* update by t: compare like with like
    at_records = job.record_every * np.floor(times / (time_per_update * job.record_every))
    exact_t = _theory_error(job, result, at_records)
    # both tables hold one block of rows per grid point, in grid order
    curves["error_theory"] = np.nan if exact_up is None else exact_up.reshape(-1)
    curves_time["error_theory"] = np.nan if exact_t is None else exact_t.reshape(-1)
    out = {"curves": _with_keys(curves, job, keys), "curves_time": _with_keys(curves_time, job, keys)}
    if job.save_replicas:
        out["replicas"] = _with_keys(result.replica_records(), job, keys)
    return out


# --------------------------------------------------------------------------------------------------
# summary


def _theory(job: Job) -> dict[str, Any]:
    s = job.setting
    out: dict[str, Any] = {"time_per_update_bound": None, "staleness_mean_theory": None}
    try:
        bound = theory.time_per_update_bound(s.variant, s.P, s.K, job.delay, speeds=job.speeds)
        if bound is not None:
            out["time_per_update_bound"] = {"kind": bound[0], "value": bound[1]}
        if job.speeds is None:
            out["staleness_mean_theory"] = theory.staleness_mean(s.variant, s.P, s.K)
    except Exception as exc:  # theory is a bonus: never lose a finished simulation over it
        log.warning("no runtime theory for this job: %s", exc)
    return out


def summarise(job: Job, result: Result, keys: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> dict:
    """summary.json: Result.summary() (grid columns named lr.<field>), the runtime theory, one row per grid
    point under `grid`, the key columns under `keys`, versions, and `meta` (overrides, choices, job number)."""
    names = _grid_names(job)
    s = result.summary(job.target_error)
    s["best_grid_point"] = {names.get(k, k): v for k, v in s["best_grid_point"].items()}
    s.update(_theory(job))
    s["target_error"] = job.target_error
    for q in QUANTILES:
        s.setdefault(f"time_to_target_q{round(q * 100)}", None)
    s.setdefault("reached_fraction", None)
    grid = result.grid_summary(job.target_error).rename(columns=names)
    s["grid"] = [{k: plain(v) for k, v in row.items()} for _, row in grid.iterrows()]
    for row in s["grid"]:
        row["diverged_replicas"] = int(round(row["diverged_fraction"] * job.replicas))
    s["diverged_replicas"] = int(round((s.get("diverged_fraction") or 0.0) * job.replicas))
    s["aggregates"] = "error statistics are over the replicas that never diverged (replicas_finite in the tables)"
    s["keys"] = dict(keys)
    s["jaxsgd_version"] = __version__
    s["jax_version"] = jax.__version__
    s["versions"] = versions()
    s["backend"] = jax.default_backend()
    s["precision"] = job.runtime.precision
    s["config"] = job.config
    s["config_hash"] = job.config_hash
    s.update(meta or {})
    return plain(s)


def versions() -> dict[str, str | None]:
    """Versions of Python and of the packages that decide a job's numbers."""
    out: dict[str, str | None] = {"jaxsgd": __version__, "python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "numpy", "optax", "scipy", "pandas", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _line(s: Mapping[str, Any]) -> str:
    """The one log line of a job."""
    th, bound = s["time_per_update_theory"], s["time_per_update_bound"]
    if th is not None:
        theory_text = f" (theory {th:.4g})"
    elif bound is not None:
        theory_text = f" (theory {'<=' if bound['kind'] == 'upper' else '>='} {bound['value']:.4g})"
    else:
        theory_text = ""
    err = s.get("final_error_mean")
    if s.get("all_diverged"):
        err_text = "every replica diverged"
    elif err is None:
        err_text = "no final error (most replicas diverged at every learning rate)"
    else:
        err_text = f"final error {err:.4g}"
    if s.get("final_error_sem") is not None:
        err_text += f" ± {s['final_error_sem']:.2g}"
    if not s.get("all_diverged") and s.get("diverged_replicas"):
        err_text += f" ({s['diverged_replicas']}/{s['replicas']} diverged, left out)"
    target = ""
    if s["target_error"] is not None:
        t50 = s["time_to_target_q50"]
        reached = f"{100 * s['reached_fraction']:.0f}%"
        target = f", time to {s['target_error']:.3g}: {'never' if t50 is None else f'{t50:.4g}'} (median, {reached} reached)"
    return (
        f"{s['variant']} P={s['P']} K={s['K']} {s['delay']}: E[T] {s['time_per_update']:.4g}{theory_text}, "
        f"staleness {s['staleness_mean']:.3g}, {err_text}{target}; {s['replicas']} replicas x {s['updates']} "
        f"updates in {s['run_seconds']:.2f}s (+{s['compile_seconds']:.2f}s compile, {s['devices']} device(s))"
    )


def _report_divergence(summary: Mapping[str, Any]) -> None:
    """Log the replicas that diverged (non-finite error), per learning-rate grid point, and say that the
    aggregates leave them out; a clear warning when every replica diverged."""
    R = summary["replicas"]
    if summary.get("all_diverged"):
        log.warning(
            "every replica diverged (non-finite error) at every learning rate: the error columns of the tables are "
            "empty (replicas_finite=0) and summary.json says all_diverged=true; try a smaller learning rate."
        )
        return
    grid_cols = list(summary.get("best_grid_point") or {})
    for row in summary["grid"]:
        n = row.get("diverged_replicas") or 0
        if n:
            where = ", ".join(f"{c}={row[c]}" for c in grid_cols)
            log.warning("%s: %d/%d replicas diverged (%.1f%%), left out of the aggregates",
                        where or "the job", n, R, 100.0 * n / R)


# --------------------------------------------------------------------------------------------------
# the job


def _read_summary(out: Path) -> dict | None:
    try:
        s = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):  # none (or unreadable: never written by jaxsgd, which writes atomically)
        return None
    return s if isinstance(s, dict) else None


def finished(output_dir: str | Path, config_hash: str | None = None) -> dict | None:
    """The summary of the finished job in `output_dir` (summary.json, written last, and every file it
    lists present), if its config hash is `config_hash` (any, when None); else None."""
    out = Path(output_dir)
    s = _read_summary(out)
    if s is None or (config_hash is not None and s.get("config_hash") != config_hash):
        return None
    if not all((out / f).is_file() for f in s.get("files") or []):
        return None
    return s


def _clear(out: Path) -> None:
    """Remove a previous job's results before computing, summary.json (the completion marker) first, and
    temporary files a killed job left: until this job writes its own summary.json, the directory holds
    nothing that looks finished."""
    (out / "summary.json").unlink(missing_ok=True)
    for name in FILES:
        (out / name).unlink(missing_ok=True)
    for tmp in out.glob(".*.tmp"):
        if any(tmp.name.startswith(f".{name}.") for name in FILES):
            tmp.unlink(missing_ok=True)


def _resume(job: Job, out: Path) -> dict | None:
    """With resume: the finished summary to keep (the job is skipped), or None to run the job. Refuses
    (ConfigError) to replace finished results of a different config."""
    previous = _read_summary(out)
    if previous is None:
        return None
    done = finished(out, job.config_hash)
    if done is not None:
        log.info("resume: %s holds the finished results of this config (config_hash %s): skipped", out, job.config_hash)
        return done
    if previous.get("config_hash") != job.config_hash:
        raise ConfigError(
            f"resume=true: {out} holds the finished results of a different config (config_hash "
            f"{previous.get('config_hash')}, this job's is {job.config_hash}); jaxsgd does not overwrite them. Resume "
            f"with the same overrides as the interrupted run, or use a new output directory (hydra.sweep.dir / hydra.run.dir)."
        )
    return None  # the same config, but files are missing: run it again


def run(job: Job, output_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict:
    """Simulate `job`, write its outputs into `output_dir` (each file atomically, summary.json last) and
    log one line; returns the summary. `meta` is added to summary.json (e.g. overrides, choices).

    Any previous results in `output_dir` are removed first (summary.json first). With `job.resume`, a
    directory holding the finished results of the same config (the same config_hash) is left untouched
    and its summary returned; one holding another config's finished results is refused (ConfigError)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if job.resume:
        kept = _resume(job, out)
        if kept is not None:
            return kept
    _clear(out)
    for note in job.notes:
        log.info(note)
    s = job.setting
    with tqdm(total=job.updates, desc=f"{s.name} P={s.P} K={s.K}", unit="update", leave=False,
              disable=None if job.progress else True, dynamic_ncols=True) as bar:
        result = simulate(
            job.problem, s.name, s.P, s.K, delay=job.delay, lr=job.lr, optimizer=job.optimizer,
            updates=job.updates, replicas=job.replicas, record_every=job.record_every,
            batch_size=job.batch_size, seed=job.seed, speeds=job.speeds, chunk=job.chunk,
            devices=_devices(job), progress=lambda done, total: bar.update(done - bar.n),
        )
    keys = key_columns(job)
    summary = summarise(job, result, keys, meta)
    time_per_update = summary["time_per_update_theory"] or summary["time_per_update"]
    frames = tables(job, result, keys, time_per_update)
    fig = None
    if job.figure:
        from .plot import job_figure  # matplotlib: only when drawing

        with np.errstate(over="ignore", invalid="ignore"):  # an exact error that overflowed (unstable rate)
            fig = job_figure(frames["curves"], frames["curves_time"], summary)
        if summary["all_diverged"]:
            for ax in fig.axes:
                ax.text(0.5, 0.5, "every replica diverged\n(non-finite error)", transform=ax.transAxes, ha="center",
                        va="center", color="firebrick", fontsize=12)

    written = [f"{name}.parquet" for name in frames] + (["figure.png"] if fig is not None else [])
    summary["output_dir"] = str(out.resolve())
    summary["files"] = written + ["summary.json"]
    if fig is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            write_figure(out / "figure.png", fig)
    for name, df in frames.items():
        write_parquet(out / f"{name}.parquet", df)
    write_json(out / "summary.json", summary)  # last: its presence marks a finished job
    _report_divergence(summary)
    log.info("%s -> %s", _line(summary), out)
    return summary
