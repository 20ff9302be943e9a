"""Figures: one job's error against wall-clock time and updates (with the exact theory where there is one),
a sweep's comparison, and the `jaxsgd-plot DIR` command that redraws them from the files on disk.

Figures are matplotlib `Figure` objects drawn without pyplot (no global state, no display needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["job_figure", "sweep_figure", "main"]

BAND = ("error_q10", "error_q90")


def _label(values: Sequence, by: Sequence[str]) -> str:
    """'k_sync, K=4': option names (text) as they are, numbers as key=value."""
    if len(by) == 1:
        return str(values[0])
    return ", ".join(v if isinstance(v, str) else f"{k}={v}" for k, v in zip(by, values))


def _curve(ax, x, df: pd.DataFrame, color, label: str | None) -> None:
    ax.plot(x, df["error_mean"], color=color, lw=1.6, label=label)
    if all(c in df for c in BAND):
        ax.fill_between(x, df[BAND[0]], df[BAND[1]], color=color, alpha=0.15, lw=0)


def _finish(ax, xlabel: str, df: pd.DataFrame) -> None:
    err = df[["error_mean", *[c for c in BAND if c in df]]].to_numpy(dtype=float)
    if np.all(err[np.isfinite(err)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error  F(w) - F*")
    ax.grid(True, which="major", alpha=0.3)


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def job_figure(curves: pd.DataFrame, curves_time: pd.DataFrame, summary: dict) -> Figure:
    """Error (mean over finite replicas, band q10..q90) against wall-clock time and against updates, one line
    per learning-rate grid point; the exact expected error (`error_theory`) dashed where there is one."""
    grid_cols = list(summary.get("best_grid_point", {}))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_t, ax_u = fig.subplots(1, 2)
    groups_t = list(curves_time.groupby(grid_cols, sort=False)) if grid_cols else [((), curves_time)]
    groups_u = list(curves.groupby(grid_cols, sort=False)) if grid_cols else [((), curves)]
    colors = _colors(len(groups_u))
    for color, (key, dt), (_, du) in zip(colors, groups_t, groups_u):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(grid_cols, key)) if len(groups_u) > 1 else "simulated (mean, q10-q90)"
        _curve(ax_t, dt["time"], dt, color, label)
        _curve(ax_u, du["update"], du, color, label)
        for ax, x, d in ((ax_t, dt["time"], dt), (ax_u, du["update"], du)):
            if "error_theory" in d and d["error_theory"].notna().any():
                theory_label = "exact E[error]" if color == colors[0] else None
                theory_color = "k" if len(groups_u) == 1 else color
                ax.plot(x, d["error_theory"], color=theory_color, ls="--", lw=1.2, label=theory_label, zorder=3)
    if summary.get("target_error") is not None:
        for ax in (ax_t, ax_u):
            ax.axhline(summary["target_error"], color="grey", ls=":", lw=1, label="target")
    _finish(ax_t, "wall-clock time", curves_time)
    _finish(ax_u, "updates", curves)
    ax_t.legend(fontsize=8)
    fig.suptitle(f"{summary['variant']}  P={summary['P']}  K={summary['K']}  {summary['delay']}", fontsize=10)
    return fig


def sweep_figure(summary: pd.DataFrame, curves: pd.DataFrame, curves_time: pd.DataFrame, by: Sequence[str],
                 grid: Sequence[str] = ()) -> Figure:
    """A sweep's comparison: error against wall-clock time and against updates, one line per row of
    `summary` (a job at one `grid` point) labelled by the `by` columns; and E[T] simulated vs theory."""
    by = list(by)
    match = ["job", *grid]
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_t, ax_u, ax_e = fig.subplots(1, 3, width_ratios=(1.2, 1.2, 1))
    colors = _colors(len(summary))
    labels = []
    for color, (_, row) in zip(colors, summary.iterrows()):
        label = _label([row[c] for c in by], by)
        labels.append(label)
        for ax, df, x in ((ax_t, curves_time, "time"), (ax_u, curves, "update")):
            mask = np.logical_and.reduce([(df[c] == row[c]).to_numpy() for c in match])
            _curve(ax, df.loc[mask, x], df.loc[mask], color, label)
    targets = summary["target_error"].dropna().unique() if "target_error" in summary else []
    if len(targets) == 1:
        for ax in (ax_t, ax_u):
            ax.axhline(targets[0], color="grey", ls=":", lw=1, label="target" if ax is ax_t else None)
    _finish(ax_t, "wall-clock time", curves_time)
    _finish(ax_u, "updates", curves)
    ends = curves_time.groupby(["job", *grid])["time"].max()
    if ends.max() > 5 * ends.min() > 0:  # runs of very different lengths: keep the fast ones readable
        ax_t.set_xscale("log")
    ax_t.legend(fontsize=8, title=by[0] if len(by) == 1 else None)

    pos = np.arange(len(summary))
    ax_e.bar(pos, summary["time_per_update"], color=colors, alpha=0.8, label="simulated")
    exact = pd.to_numeric(summary.get("time_per_update_theory"), errors="coerce")
    ax_e.scatter(pos, exact, color="k", marker="o", zorder=3, label="theory")
    if "time_per_update_bound" in summary:
        bound = pd.to_numeric(summary["time_per_update_bound"], errors="coerce")
        kind = summary.get("time_per_update_bound_kind", pd.Series([None] * len(summary)))
        for marker, k in (("v", "upper"), ("^", "lower")):
            sel = (kind == k).to_numpy()
            if sel.any():
                ax_e.scatter(pos[sel], bound[sel], color="k", marker=marker, zorder=3, label=f"theory ({k} bound)")
    ax_e.set_xticks(pos, labels, rotation=45, ha="right", fontsize=8)
    ax_e.set_ylabel("mean time per update  E[T]")
    ax_e.legend(fontsize=8)
    ax_e.grid(True, axis="y", alpha=0.3)
    return fig


def _redraw_job(job_dir: Path, out: Path | None) -> Path:
    from .outputs import write_figure

    summary = json.loads((job_dir / "summary.json").read_text())
    fig = job_figure(pd.read_parquet(job_dir / "curves.parquet"), pd.read_parquet(job_dir / "curves_time.parquet"), summary)
    return write_figure(out or job_dir / "figure.png", fig)


def main(argv: Sequence[str] | None = None) -> int:
    """`jaxsgd-plot DIR`: for a sweep root, gather its jobs (sweep_*.parquet), print the table and draw
    sweep_figure.png; for one job's directory, redraw its figure.png."""
    parser = argparse.ArgumentParser(prog="jaxsgd-plot", description=main.__doc__)
    parser.add_argument("dir", type=Path, help="a sweep root (multirun/...) or a job's output directory")
    parser.add_argument("--out", type=Path, default=None, help="where to write the figure (default: in DIR)")
    args = parser.parse_args(argv)
    from .sweep import gather, render_table, write_sweep_figure

    if not args.dir.is_dir():
        print(f"jaxsgd-plot: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if (args.dir / "summary.json").is_file() and (args.dir / "curves.parquet").is_file():
        print(f"figure: {_redraw_job(args.dir, args.out)}")
        return 0
    sweep = gather(args.dir)
    if sweep is None:
        print(f"jaxsgd-plot: no finished job (summary.json) under {args.dir}", file=sys.stderr)
        return 2
    print(render_table(sweep))
    print(f"figure: {write_sweep_figure(sweep, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
