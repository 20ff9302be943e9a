"""What the figure scripts share: the experiment registry entry, loading a gathered sweep, the statistics
(steady-state time per update with batch-means standard errors, curves on a common time grid), the
checks that turn numbers into verdicts, and the report section each figure returns.

Nothing here simulates: every number comes from the tables a sweep's GatherSweep callback wrote at its
root (sweep_summary.parquet, sweep_curves.parquet, sweep_curves_time.parquet) or from jaxsgd.theory.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]

#: |simulated - theory| within this many standard errors counts as agreement (a bound: on the right side
#: of it, or within this many standard errors of it).
Z_AGREE = 4.0
#: a difference between two simulated means counts as real when it exceeds this many standard errors.
Z_DIFFER = 2.0
#: family-wise false-alarm rate of a figure's simulated-vs-theory comparisons (see z_limit)
FAMILY = 0.05


def z_limit(n: int) -> float:
    """The |z| up to which a simulated value agrees with theory when a figure makes `n` such comparisons:
    Z_AGREE, raised to the Bonferroni bound (two-sided, family-wise FAMILY) where n is large enough for
    chance alone to push one of them beyond Z_AGREE."""
    from scipy.stats import norm

    return max(Z_AGREE, float(norm.isf(FAMILY / (2 * max(n, 1)))))

#: Colours of the variants, the same in every figure (sync is K-sync with K=P, async K-batch-async K=1).
COLORS = {"k_sync": "C0", "sync": "C0", "k_batch_sync": "C1", "k_async": "C2", "k_batch_async": "C3", "async": "C3"}
VARIANTS = ("k_sync", "k_batch_sync", "k_async", "k_batch_async")
LABELS = {"k_sync": "K-sync", "k_batch_sync": "K-batch-sync", "k_async": "K-async", "k_batch_async": "K-batch-async",
          "sync": "sync", "async": "async"}

SWEEP_FILES = ("sweep_summary.parquet", "sweep_curves.parquet", "sweep_curves_time.parquet")


# --------------------------------------------------------------------------------------------------
# the registry entry of a figure and what it returns


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One figure: its Hydra experiment config (conf/experiment/<config>.yaml) and its drawing function."""

    name: str  # figure name: figures/<name>.png, figures/data/<name>/
    config: str  # the experiment config: python -m jaxsgd +experiment=<config>
    title: str
    draw: Callable[[Tables, Path], Section]
    paper: tuple[str, ...] = ()  # overrides for --scale paper (a GPU)
    tiny: tuple[str, ...] = ()  # overrides for the tests (seconds on a CPU)


@dataclasses.dataclass
class Check:
    """A claim tested on the numbers: passed is True/False, or None when the data cannot decide."""

    claim: str
    passed: bool | None
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "agrees", False: "disagrees", None: "undecided"}[self.passed]


@dataclasses.dataclass
class Section:
    """What a figure contributes to REPORT.md: the image, its paragraphs, checks and tables."""

    name: str
    title: str
    image: Path
    text: list[str]
    checks: list[Check]
    tables: list[tuple[str, pd.DataFrame]] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# loading


@dataclasses.dataclass
class Tables:
    """The gathered tables of one experiment's sweep root (and RUN.json, written by make_figures)."""

    root: Path
    summary: pd.DataFrame
    curves: pd.DataFrame
    curves_time: pd.DataFrame
    run: dict


def has_tables(root: Path) -> bool:
    return all((root / f).is_file() for f in SWEEP_FILES)


def load(root: str | Path) -> Tables:
    """The gathered tables at a sweep root. Where the callback did not write them (a sweep that was cut
    short), jaxsgd.sweep.gather builds them from the finished jobs' files (reading, never simulating)."""
    root = Path(root)
    if not has_tables(root):
        from jaxsgd.sweep import gather

        if gather(root) is None:
            raise FileNotFoundError(f"no gathered sweep and no finished job under {root}: run the experiment first")
    run = json.loads((root / "RUN.json").read_text()) if (root / "RUN.json").is_file() else {}
    summary, curves, curves_time = (pd.read_parquet(root / f) for f in SWEEP_FILES)
    return Tables(root, summary, curves, curves_time, run)


def parse(value: Any) -> Any:
    """A table cell back to a Python value (list-valued settings are stored as their text)."""
    if isinstance(value, str) and value[:1] in "[(":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def delay_law(row: pd.Series | dict):
    """The jaxsgd.delays law of a table row, from its `delay` and `delay.<param>` columns."""
    from jaxsgd import delays

    params = {k.split(".", 1)[1]: parse(v) for k, v in dict(row).items()
              if k.startswith("delay.") and v is not None and not (isinstance(v, float) and math.isnan(v))}
    return delays.make(row["delay"], **params)


def describe_law(row: pd.Series | dict) -> str:
    return delay_law(row).describe()


def first(df: pd.DataFrame, column: str) -> Any:
    """The single value of a column that is constant over the table."""
    values = df[column].dropna().unique()
    return values[0] if len(values) else None


# --------------------------------------------------------------------------------------------------
# statistics


def steady_time_per_update(update: np.ndarray, time_mean: np.ndarray, warmup: float = 0.25,
                           batches: int = 20) -> tuple[float, float]:
    """Long-run mean time per update and its standard error from one job's recorded times.

    (t_J - t_{J0}) / (J - J0) with the first `warmup` share of the updates left out: the start (all
    workers begin together at t=0) is a transient for the asynchronous variants that biases t_J / J by
    O(1/J). The standard error is that of the method of batch means: the span after the warm-up is cut
    into `batches` equal batches of records, and the spread of the batch rates gives the error of their
    mean. NaN when there are fewer than two batches.
    """
    u = np.asarray(update, dtype=float)
    t = np.asarray(time_mean, dtype=float)
    order = np.argsort(u)
    u, t = u[order], t[order]
    n = len(u) - 1
    if n < 1:
        return math.nan, math.nan
    i0 = int(round(warmup * n))
    b = min(batches, n - i0)
    if b < 1:
        return float(t[-1] / u[-1]), math.nan
    i0 = n - b * ((n - i0) // b)  # whole batches, ending at the last record
    idx = np.linspace(i0, n, b + 1).round().astype(int)
    rate = float((t[-1] - t[i0]) / (u[-1] - u[i0]))
    if b < 2:
        return rate, math.nan
    rates = np.diff(t[idx]) / np.diff(u[idx])
    return rate, float(rates.std(ddof=1) / math.sqrt(b))


def job_rates(curves: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per job: the `keys` columns, E[T] (steady state) and its standard error."""
    rows = []
    first_grid = curves.drop_duplicates(["job", "update"])  # grid points of one job share the timeline
    for job, df in first_grid.groupby("job", sort=False):
        rate, se = steady_time_per_update(df["update"].to_numpy(), df["time_mean"].to_numpy())
        row = {k: df[k].iloc[0] for k in keys if k in df}
        rows.append({"job": job, **row, "time_per_update": rate, "time_per_update_se": se})
    return pd.DataFrame(rows)


def zscore(sim: float, se: float, ref: float) -> float:
    """(sim - ref) / se; 0 when they are equal, +-inf when the error is zero or unknown and they differ."""
    diff = sim - ref
    if diff == 0:
        return 0.0
    if not se or not math.isfinite(se):
        return math.copysign(math.inf, diff)
    return diff / se


def ratio_se(a: float, sa: float, b: float, sb: float) -> float:
    """Standard error of a / b for independent estimates (delta method)."""
    return abs(a / b) * math.sqrt((sa / a) ** 2 + (sb / b) ** 2)


def on_grid(df: pd.DataFrame, times: np.ndarray, column: str = "error_mean") -> np.ndarray:
    """A curves_time column of one job at `times` (linear interpolation; NaN beyond the job's horizon)."""
    df = df.sort_values("time")
    t = df["time"].to_numpy(float)
    y = df[column].to_numpy(float)
    out = np.interp(times, t, y)
    out[(times > t[-1]) | (times < t[0])] = np.nan
    return out


def horizon(curves_time: pd.DataFrame) -> float:
    """The latest time every job reached (each job's wall-clock grid ends at its earliest final time)."""
    return float(curves_time.groupby("job")["time"].max().min())


def log_times(curves_time: pd.DataFrame, end: float, points: int = 400) -> np.ndarray:
    """Log-spaced times from the first positive grid time of any job up to `end`."""
    t = curves_time["time"].to_numpy(float)
    start = float(np.min(t[t > 0])) if np.any(t > 0) else end / 1000
    return np.geomspace(min(start, end / 10), end, points)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN for fewer than 3 points."""
    x, y = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    if len(x) < 3:
        return math.nan
    return float(x.rank().corr(y.rank()))


def crossover(times: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
    """The time after which `b` stays below `a` (the last sign change of a - b to positive), by linear
    interpolation between grid times; None when b is not below a at the end or never above it."""
    d = a - b
    ok = np.isfinite(d)
    times, d = times[ok], d[ok]
    if len(d) == 0 or d[-1] <= 0:
        return None
    above = np.nonzero(d <= 0)[0]
    if len(above) == 0:
        return None
    i = above[-1]
    if i + 1 >= len(d):
        return None
    t0, t1, d0, d1 = times[i], times[i + 1], d[i], d[i + 1]
    return float(t0 + (t1 - t0) * (0 - d0) / (d1 - d0)) if d1 != d0 else float(t1)


def first_time_below(times: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """The first grid time at which y <= level (interpolated), or None."""
    below = np.nonzero(np.isfinite(y) & (y <= level))[0]
    if len(below) == 0:
        return None
    i = below[0]
    if i == 0:
        return float(times[0])
    t0, t1, y0, y1 = times[i - 1], times[i], y[i - 1], y[i]
    return float(t0 + (t1 - t0) * (y0 - level) / (y0 - y1)) if y0 != y1 else float(t1)


# --------------------------------------------------------------------------------------------------
# text


def fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}g}"


def pm(x: float, se: float, digits: int = 4) -> str:
    return f"{fmt(x, digits)} ± {fmt(se, 2)}"


def summarize_checks(checks: Iterable[Check]) -> str:
    checks = list(checks)
    agree = sum(c.passed is True for c in checks)
    return f"{agree} of {len(checks)} checks agree with the paper's claims and the theory"


def cell(value: Any) -> str:
    """Text fit for a markdown table cell (a '|' would end the cell)."""
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (cells as they are formatted already)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell(v) for v in row.to_numpy()) + " |")
    return "\n".join(lines)


def scale_note(t: Tables) -> str:
    """'1000 replicas x 2000 updates' from the summary (a range where jobs differ)."""
    def span(col):
        v = t.summary[col].dropna().astype(int)
        return fmt(v.min()) if v.min() == v.max() else f"{v.min()}-{v.max()}"

    return f"{span('replicas')} replicas x {span('updates')} updates per job, {t.summary['job'].nunique()} jobs"


# --------------------------------------------------------------------------------------------------
# figures


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def band(ax, x, mean, lo, hi, color, label=None, **kw) -> None:
    ax.plot(x, mean, color=color, label=label, **kw)
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
