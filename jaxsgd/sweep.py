"""A sweep's jobs gathered into tables at the sweep root (sweep_summary.parquet, sweep_curves.parquet,
sweep_curves_time.parquet; one column per swept key), a text table of them, and the Hydra callback that
does both, and draws the comparison figure, when a --multirun ends."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback

from .outputs import cell, write_figure, write_parquet

__all__ = ["Sweep", "gather", "render_table", "write_sweep_figure", "GatherSweep", "JOB_METRICS", "SWEEP_FILES"]

log = logging.getLogger(__name__)

#: Per-job numbers copied from summary.json into every row of sweep_summary.
JOB_METRICS = (
    "replicas", "updates", "record_every", "seed", "devices", "time_per_update", "time_per_update_theory",
    "time_per_update_bound_kind", "time_per_update_bound", "staleness_mean", "staleness_mean_theory",
    "fresh_fraction", "compile_seconds", "run_seconds",
)


#: What gathering writes at a sweep root.
SWEEP_FILES = ("sweep_summary.parquet", "sweep_curves.parquet", "sweep_curves_time.parquet", "sweep_figure.png")


@dataclasses.dataclass
class Sweep:
    """The gathered jobs of one sweep root."""

    root: Path
    summary: pd.DataFrame  # one row per job and learning-rate grid point
    curves: pd.DataFrame  # every job's curves.parquet, with `job` and the swept keys
    curves_time: pd.DataFrame  # every job's curves_time.parquet, likewise
    by: list[str]  # the columns that tell the rows apart (swept keys and grid fields that vary)
    grid: list[str]  # the learning-rate grid columns (lr.<field>)


def job_dirs(root: str | Path) -> list[Path]:
    """Directories under `root` holding a finished job (a summary.json), in job order."""
    root = Path(root)
    found = [p.parent for p in root.rglob("summary.json") if not any(part.startswith(".") for part in p.relative_to(root).parts)]

    def order(d: Path):
        name = d.relative_to(root).as_posix()
        return (0, int(name), name) if name.isdigit() else (1, 0, name)

    return sorted(found, key=order)


def _override_keys(overrides: list[str]) -> dict[str, str]:
    """{key: raw value} of a job's overrides, without Hydra's own keys and the +/++/~ prefixes."""
    out = {}
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~").split("@")[0]
        if key and not key.startswith("hydra"):
            out[key] = value
    return out


def _lookup(summary: dict, key: str, raw: str) -> Any:
    """The value of an overridden key in a job: its group option, its resolved config value, or the raw text."""
    choices = summary.get("choices") or {}
    if key in choices:
        return choices[key]
    node: Any = summary.get("config") or {}
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return raw
        node = node[part]
    return cell(node)


def _job_rows(summary: dict, job: str, extra: dict) -> list[dict]:
    bound = summary.get("time_per_update_bound") or {}
    metrics = {m: summary.get(m) for m in JOB_METRICS}
    metrics["time_per_update_bound_kind"] = bound.get("kind")
    metrics["time_per_update_bound"] = bound.get("value")
    base = {"job": job, **summary["keys"], **extra}
    return [{**base, **point, **metrics} for point in summary["grid"]]


def _front(df: pd.DataFrame, columns: dict) -> pd.DataFrame:
    front = pd.DataFrame({k: [v] * len(df) for k, v in columns.items()}, index=df.index)
    return pd.concat([front, df.drop(columns=[c for c in columns if c in df])], axis=1)


def _varying(df: pd.DataFrame, candidates: list[str]) -> list[str]:
    return [c for c in candidates if c in df and df[c].astype(str).nunique(dropna=False) > 1]


def gather(root: str | Path) -> Sweep | None:
    """Gather every finished job under `root` and save the sweep_*.parquet tables there (atomically).
    Returns None when there is no finished job."""
    root = Path(root)
    rows, curves, curves_time, swept, keys, grid_cols = [], [], [], [], [], []
    for d in job_dirs(root):
        try:
            s = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable summary.json (%s): skipped", d, exc)
            continue
        missing = [f for f in ("curves.parquet", "curves_time.parquet") if not (d / f).is_file()]
        if missing or not isinstance(s, dict) or "keys" not in s or "grid" not in s:
            why = f"no {', '.join(missing)}" if missing else "not a job summary"
            log.warning("%s: not a finished jaxsgd job (%s): skipped", d, why)
            continue
        job = d.relative_to(root).as_posix() if d != root else "."
        overrides = _override_keys(s.get("overrides") or [])
        grid = list(s.get("best_grid_point") or {})
        extra = {k: _lookup(s, k, v) for k, v in overrides.items() if k not in s["keys"] and k not in grid}
        swept += [k for k in overrides if k not in swept]
        keys += [k for k in s["keys"] if k not in keys]
        grid_cols += [c for c in grid if c not in grid_cols]
        rows += _job_rows(s, job, extra)
        curves.append(_front(pd.read_parquet(d / "curves.parquet"), {"job": job, **extra}))
        curves_time.append(_front(pd.read_parquet(d / "curves_time.parquet"), {"job": job, **extra}))
    if not rows:
        return None
    summary = pd.DataFrame(rows)
    # swept keys first, then other settings (groups before their parameters), then grid fields
    order = [*swept, *sorted(keys, key=lambda k: "." in k), *grid_cols]
    by = _varying(summary, list(dict.fromkeys(order))) or ["variant"]
    sweep = Sweep(root, summary, pd.concat(curves, ignore_index=True), pd.concat(curves_time, ignore_index=True), by, grid_cols)
    write_parquet(root / "sweep_summary.parquet", sweep.summary)
    write_parquet(root / "sweep_curves.parquet", sweep.curves)
    write_parquet(root / "sweep_curves_time.parquet", sweep.curves_time)
    return sweep


# --------------------------------------------------------------------------------------------------
# text table and figure


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def _error_at(curves_time: pd.DataFrame, row: pd.Series, match: list[str], t: float) -> float | None:
    mask = np.ones(len(curves_time), bool)
    for c in match:
        mask &= (curves_time[c] == row[c]).to_numpy()
    df = curves_time.loc[mask & (curves_time["time"] <= t).to_numpy()]
    return None if df.empty else float(df["error_mean"].iloc[-1])


def _time_to_target(t50: Any, reached: Any) -> str:
    if reached is None or pd.isna(reached):
        return "-"
    return "never" if t50 is None or pd.isna(t50) else f"{_num(t50)} ({100 * reached:.0f}%)"


def render_table(sweep: Sweep) -> str:
    """One line per job and grid point: the distinguishing columns, E[T] simulated vs theory, mean
    staleness, final error (mean ± sem), the error at the latest time every job reached (a race at equal
    wall-clock time), and the median time to the target error where one was set."""
    s = sweep.summary
    match = ["job", *sweep.grid]
    horizon = float(sweep.curves_time.groupby(match)["time"].max().min())
    table = pd.DataFrame({c: s[c].map(lambda v: "-" if v is None else str(v)) for c in sweep.by})
    table["E[T] sim"] = s["time_per_update"].map(_num)

    def theory(row) -> str:
        if row.get("time_per_update_theory") is not None and not pd.isna(row["time_per_update_theory"]):
            return _num(row["time_per_update_theory"])
        kind = row.get("time_per_update_bound_kind")
        if isinstance(kind, str):
            return f"{'<=' if kind == 'upper' else '>='} {_num(row['time_per_update_bound'])}"
        return "-"

    table["E[T] theory"] = s.apply(theory, axis=1)
    table["staleness"] = s["staleness_mean"].map(lambda x: _num(x, 3))
    table["final error"] = [
        "diverged" if pd.isna(m) else f"{_num(m)} ± {_num(e, 2)}" for m, e in zip(s["final_error_mean"], s["final_error_sem"])
    ]
    table[f"error @ t={horizon:.4g}"] = [_num(_error_at(sweep.curves_time, row, match, horizon)) for _, row in s.iterrows()]
    if "target_error" in s and s["target_error"].notna().any():
        targets = s["target_error"].dropna().unique()
        header = f"time to {targets[0]:.3g}" if len(targets) == 1 else "time to target"
        table[header] = [_time_to_target(t50, r) for t50, r in zip(s["time_to_target_q50"], s["reached_fraction"])]
    return table.to_string(index=False)


def write_sweep_figure(sweep: Sweep, path: str | Path | None = None) -> Path:
    from .plot import sweep_figure

    fig = sweep_figure(sweep.summary, sweep.curves, sweep.curves_time, sweep.by, sweep.grid)
    return write_figure(Path(path) if path else sweep.root / "sweep_figure.png", fig)


class GatherSweep(Callback):
    """Hydra callback (hydra.callbacks.gather in conf/config.yaml): when a --multirun ends, gather its jobs
    into sweep_summary.parquet, sweep_curves.parquet and sweep_curves_time.parquet at the sweep root, print
    the table (stdout) and draw sweep_figure.png."""

    def __init__(self, table: bool = True, figure: bool = True) -> None:
        self.table = table
        self.figure = figure

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        """A sweep into a directory that holds gathered tables (a rerun, or a resume after a crash) removes
        them first: until this sweep ends and gathers again, nothing at the root looks like its result."""
        root = Path(str(config.hydra.sweep.dir))
        for name in SWEEP_FILES:
            (root / name).unlink(missing_ok=True)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        sweep = gather(root)
        if sweep is None:
            log.warning("no finished job under %s: nothing gathered", root)
            return
        lines = [f"gathered {sweep.summary['job'].nunique()} job(s): {root / 'sweep_summary.parquet'}, "
                 f"{root / 'sweep_curves.parquet'}"]
        if self.table:
            lines += ["", render_table(sweep), ""]
        if self.figure:
            lines.append(f"figure: {write_sweep_figure(sweep)}")
        print("\n".join(lines), flush=True)
