"""Results of a simulation: per-replica records and their aggregation into tidy pandas tables (SPEC §8)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Records", "Result", "QUANTILES", "error_at_times", "aggregate"]

QUANTILES = (0.1, 0.5, 0.9)


@dataclasses.dataclass
class Records:
    """Per-replica records, every `record_every` updates (column 0 is update 0, the start)."""

    update: np.ndarray  # (n,) update index j
    time: np.ndarray  # (replicas, n) t_j
    staleness: np.ndarray  # (replicas, n) mean staleness of the gradients applied since the last record
    error: np.ndarray  # (grid, replicas, n) F(w_j) - F* (the loss where F* is unknown)
    accuracy: np.ndarray | None  # (grid, replicas, n) test accuracy, or None


def aggregate(values: np.ndarray, keep: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """Mean, standard error and quantiles over replicas (axis 0) of the rows where `keep`.

    values: (replicas, n); keep: (replicas,) bool. Columns are NaN where no replica is kept.
    """
    v = values[keep]
    n = v.shape[0]
    out: dict[str, np.ndarray] = {}
    if n == 0:
        nan = np.full(values.shape[1], np.nan)
        out[f"{prefix}_mean"], out[f"{prefix}_sem"] = nan, nan
        for q in QUANTILES:
            out[f"{prefix}_q{round(q * 100)}"] = nan
        return out
    out[f"{prefix}_mean"] = v.mean(axis=0)
    out[f"{prefix}_sem"] = v.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(v.shape[1], np.nan)
    qs = np.quantile(v, QUANTILES, axis=0)
    for q, row in zip(QUANTILES, qs):
        out[f"{prefix}_q{round(q * 100)}"] = row
    return out


def error_at_times(time: np.ndarray, error: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The error after the last recorded update at or before each grid time, per replica.

    time: (replicas, n) non-decreasing rows starting at 0; error: (replicas, n); grid: (m,) >= 0.
    Returns (replicas, m). (Exact for record_every = 1; otherwise the last *recorded* update.)
    """
    out = np.empty((time.shape[0], grid.shape[0]), dtype=np.float64)
    for r in range(time.shape[0]):
        idx = np.searchsorted(time[r], grid, side="right") - 1
        out[r] = error[r, np.maximum(idx, 0)]
    return out


@dataclasses.dataclass
class Result:
    """The outcome of `jaxsgd.simulate`: records of every replica at every learning-rate grid point."""

    setting: Any
    delay: Any
    problem: Any
    lr: Any
    optimizer: Any
    speeds: np.ndarray | None
    updates: int
    replicas: int
    record_every: int
    batch_size: int
    seed: int
    records: Records
    staleness_mean: float  # over all gradients applied, all replicas
    fresh_fraction: float
    compile_seconds: float
    run_seconds: float
    devices: int = 1

    # ---------------------------------------------------------------- basics
    @property
    def grid(self) -> pd.DataFrame:
        """The learning-rate grid: one row per grid point (index 'grid')."""
        df = pd.DataFrame(self.lr.grid())
        for f in getattr(self.lr, "integer_fields", ()):
            df[f] = df[f].astype(int)
        df.index.name = "grid"
        return df

    @property
    def grid_size(self) -> int:
        return self.records.error.shape[0]

    @property
    def time_per_update(self) -> float:
        """Mean over replicas of t_J / J."""
        return float(np.mean(self.records.time[:, -1]) / self.updates)

    @property
    def diverged(self) -> np.ndarray:
        """(grid, replicas) bool: the replica's error became non-finite at some record."""
        return ~np.all(np.isfinite(self.records.error), axis=-1)

    @property
    def diverged_fraction(self) -> np.ndarray:
        """(grid,) share of replicas that diverged."""
        return self.diverged.mean(axis=1)

    @property
    def trajectory_updates_per_second(self) -> float:
        return self.replicas * self.grid_size * self.updates / max(self.run_seconds, 1e-12)

    def _with_grid(self, df: pd.DataFrame, g: int) -> pd.DataFrame:
        row = self.grid.iloc[g]
        for k in reversed(list(row.index)):
            df.insert(0, k, row[k])
        return df

    # ---------------------------------------------------------------- tables
    def curves(self) -> pd.DataFrame:
        """Aggregates by update index, one block of rows per grid point.

        Columns: grid parameters, update, time_mean, error_mean, error_sem, error_q10, error_q50,
        error_q90, staleness_mean, [accuracy_mean], replicas_finite. Diverged replicas are left out.
        """
        rec = self.records
        frames = []
        for g in range(self.grid_size):
            keep = ~self.diverged[g]
            cols = {"update": rec.update, "time_mean": rec.time.mean(axis=0)}
            cols.update(aggregate(rec.error[g], keep, "error"))
            cols["staleness_mean"] = np.concatenate([[np.nan], rec.staleness[:, 1:].mean(axis=0)])
            if rec.accuracy is not None:
                cols["accuracy_mean"] = rec.accuracy[g][keep].mean(axis=0) if keep.any() else np.nan
            cols["replicas_finite"] = int(keep.sum())
            frames.append(self._with_grid(pd.DataFrame(cols), g))
        return pd.concat(frames, ignore_index=True)

    def time_grid(self, points: int | None = None) -> np.ndarray:
        """Default wall-clock grid: 0 .. the earliest final time of any replica (all replicas cover it)."""
        points = points or self.records.update.shape[0]
        return np.linspace(0.0, float(np.min(self.records.time[:, -1])), points)

    def curves_time(self, times: np.ndarray | None = None) -> pd.DataFrame:
        """Aggregates on a common wall-clock grid (each replica has its own clock).

        The error at time t is the error after the last recorded update with t_j <= t. Columns: grid
        parameters, time, error_mean, error_sem, error_q10, error_q50, error_q90, replicas_finite.
        """
        times = self.time_grid() if times is None else np.asarray(times, dtype=np.float64)
        frames = []
        for g in range(self.grid_size):
            keep = ~self.diverged[g]
            at = error_at_times(self.records.time, self.records.error[g], times)
            cols = {"time": times, **aggregate(at, keep, "error"), "replicas_finite": int(keep.sum())}
            frames.append(self._with_grid(pd.DataFrame(cols), g))
        return pd.concat(frames, ignore_index=True)

    def replica_records(self) -> pd.DataFrame:
        """Per-replica records in long form: grid parameters, replica, update, time, error[, accuracy]."""
        rec = self.records
        R, n = rec.time.shape
        frames = []
        for g in range(self.grid_size):
            cols = {
                "replica": np.repeat(np.arange(R), n),
                "update": np.tile(rec.update, R),
                "time": rec.time.ravel(),
                "error": rec.error[g].ravel(),
                "staleness_mean": rec.staleness.ravel(),
            }
            if rec.accuracy is not None:
                cols["accuracy"] = rec.accuracy[g].ravel()
            frames.append(self._with_grid(pd.DataFrame(cols), g))
        return pd.concat(frames, ignore_index=True)

    def time_to_target(self, target: float) -> pd.DataFrame:
        """Wall-clock time at which each replica's error first drops to `target` or below.

        One row per grid point: time_to_target_q10/q50/q90 over the replicas that reached it,
        reached_fraction and never_fraction (diverged replicas count as never).
        """
        rec = self.records
        rows = []
        for g in range(self.grid_size):
            hit = rec.error[g] <= target  # NaN compares False
            reached = hit.any(axis=1) & ~self.diverged[g]  # a replica that diverged counts as never
            first = np.argmax(hit, axis=1)
            t = rec.time[np.arange(rec.time.shape[0]), first][reached]
            row = {"target_error": float(target), "reached_fraction": float(reached.mean()),
                   "never_fraction": float(1.0 - reached.mean())}
            for q in QUANTILES:
                row[f"time_to_target_q{round(q * 100)}"] = float(np.quantile(t, q)) if t.size else None
            rows.append(row)
        return self._grid_frame(rows)

    def _grid_frame(self, rows: list[dict]) -> pd.DataFrame:
        return pd.concat([self.grid.reset_index(drop=True), pd.DataFrame(rows)], axis=1)

    def grid_summary(self, target_error: float | None = None) -> pd.DataFrame:
        """One row per grid point: final error (mean, sem, quantiles over finite replicas), diverged
        fraction, and time-to-target quantiles when `target_error` is given."""
        rows = []
        for g in range(self.grid_size):
            keep = ~self.diverged[g]
            agg = aggregate(self.records.error[g][:, -1:], keep, "final_error")
            row = {k: (None if np.isnan(v[0]) else float(v[0])) for k, v in agg.items()}
            row["diverged_fraction"] = float(1.0 - keep.mean())
            if self.records.accuracy is not None:
                row["final_accuracy_mean"] = float(self.records.accuracy[g][keep, -1].mean()) if keep.any() else None
            rows.append(row)
        df = self._grid_frame(rows)
        if target_error is not None:
            ttt = self.time_to_target(target_error)
            df = pd.concat([df, ttt.drop(columns=list(self.grid.columns))], axis=1)
        return df

    def best(self, target_error: float | None = None) -> int:
        """Index of the grid point with the lowest mean final error (diverged-heavy points lose)."""
        gs = self.grid_summary()
        score = gs["final_error_mean"].astype(float).fillna(np.inf).to_numpy()
        score = np.where(gs["diverged_fraction"].to_numpy() > 0.5, np.inf, score)
        return int(np.argmin(score))

    def summary(self, target_error: float | None = None) -> dict:
        """Key numbers of the run as plain values (JSON-ready). With a grid, the values are those of
        the best grid point and `grid` lists every point."""
        from . import theory  # local: theory is optional for the engine

        s = self.setting
        try:
            tpu_theory = theory.time_per_update(s.variant, s.P, s.K, self.delay, speeds=self.speeds)
        except (NotImplementedError, AttributeError):
            tpu_theory = None
        gs = self.grid_summary(target_error)
        b = self.best()
        best = {k: _plain(v) for k, v in gs.iloc[b].items()}
        out = {
            "variant": s.name,
            "P": s.P,
            "K": s.K,
            "delay": self.delay.describe(),
            "problem": self.problem.name,
            "lr": self.lr.params(),
            **self.optimizer.params(),
            "replicas": self.replicas,
            "updates": self.updates,
            "record_every": self.record_every,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "time_per_update": self.time_per_update,
            "time_per_update_theory": None if tpu_theory is None else float(tpu_theory),
            "staleness_mean": self.staleness_mean,
            "fresh_fraction": self.fresh_fraction,
            **{k: v for k, v in best.items() if k not in self.grid.columns},
            "best_grid_point": {k: _plain(v) for k, v in self.grid.iloc[b].items()},
            "all_diverged": bool(self.diverged.all()),
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
            "trajectory_updates_per_second": self.trajectory_updates_per_second,
            "devices": self.devices,
        }
        if self.grid_size > 1:
            out["grid"] = [{k: _plain(v) for k, v in row.items()} for _, row in gs.iterrows()]
        return out


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    return v
