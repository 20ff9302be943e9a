"""The error-runtime analyses shared by figures 3, 4 and 6: sync against async on a common wall-clock grid
(who falls faster, whose floor is higher, when they cross) and the trade-off in K (the error reached by
a fixed budget against K, and the frontier over every variant and K)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

try:
    from . import common as C
except ImportError:  # run as a script from experiments/
    import common as C

#: budgets of the trade-off, as fractions of the common horizon (the latest time every job reached)
BUDGETS = (1 / 30, 1 / 5, 1.0)
#: share of the common grid at its end over which a curve's level is averaged ("the floor")
TAIL = 0.1


def _job_curve(ct: pd.DataFrame, job: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    df = ct[ct["job"] == job]
    return C.on_grid(df, times, "error_mean"), C.on_grid(df, times, "error_sem")


# --------------------------------------------------------------------------------------------------
# sync vs async


@dataclasses.dataclass
class Race:
    times: np.ndarray
    sync: np.ndarray
    sync_sem: np.ndarray
    asyn: np.ndarray
    async_sem: np.ndarray
    horizon: float
    start: float  # the error at time 0
    crossover: float | None  # after this time sync stays below async
    sync_floor: tuple[float, float]  # mean and sem over the last TAIL of the grid
    async_floor: tuple[float, float]
    level: float  # half the starting error
    t_sync: float | None  # when each first reaches `level`
    t_async: float | None


def _floor(times: np.ndarray, mean: np.ndarray, sem: np.ndarray) -> tuple[float, float]:
    tail = times >= times[-1] * (1 - TAIL)
    return float(np.nanmean(mean[tail])), float(np.nanmean(sem[tail]))


def race(t: C.Tables, sync_job: str, async_job: str, points: int = 600) -> Race:
    ct = t.curves_time[t.curves_time["job"].isin([sync_job, async_job])]
    end = C.horizon(ct)
    times = C.log_times(ct, end, points)
    s, ss = _job_curve(ct, sync_job, times)
    a, sa = _job_curve(ct, async_job, times)
    start = float(ct.loc[ct["time"] == 0, "error_mean"].max())
    sf, af = _floor(times, s, ss), _floor(times, a, sa)
    level = start / 2
    return Race(times, s, ss, a, sa, end, start, C.crossover(times, a, s), sf, af, level,
                C.first_time_below(times, s, level), C.first_time_below(times, a, level))


def race_checks(r: Race, where: str) -> list[C.Check]:
    out = []
    if r.t_async is None or r.t_sync is None:
        passed, detail = None, f"one of them never reaches error {r.level:.3g} within the horizon {r.horizon:.4g}"
    else:
        passed = r.t_async < r.t_sync
        detail = (f"half the starting error ({r.level:.3g}) is reached at t = {r.t_async:.4g} by async and "
                  f"t = {r.t_sync:.4g} by sync ({r.t_sync / r.t_async:.2g}x as long)")
    out.append(C.Check(f"{where}: async's error falls faster at first (in wall-clock time)", passed, detail))
    (sf, sfs), (af, afs) = r.sync_floor, r.async_floor
    z = (af - sf) / math.hypot(sfs, afs) if math.hypot(sfs, afs) > 0 else math.inf * np.sign(af - sf)
    out.append(C.Check(
        f"{where}: async floors higher than sync (same learning rate)",
        bool(z > C.Z_DIFFER),
        f"error over the last {TAIL:.0%} of the common horizon: async {C.pm(af, afs)}, sync {C.pm(sf, sfs)} "
        f"({af / sf:.3g}x, z = {z:.1f})",
    ))
    out.append(C.Check(
        f"{where}: the curves cross (sync ends below async)",
        r.crossover is not None,
        f"crossover at t = {r.crossover:.4g} (horizon {r.horizon:.4g})" if r.crossover is not None
        else "no crossover within the horizon",
    ))
    return out


def plot_race(ax, r: Race, labels=("sync", "async")) -> None:
    for y, sem, name, color in ((r.sync, r.sync_sem, labels[0], C.COLORS["sync"]),
                                (r.asyn, r.async_sem, labels[1], C.COLORS["async"])):
        C.band(ax, r.times, y, y - 2 * sem, y + 2 * sem, color, label=f"{name} (mean ± 2 SE)", lw=1.6)
    if r.crossover is not None:
        ax.axvline(r.crossover, color="k", ls=":", lw=1)
        y = float(np.interp(r.crossover, r.times, r.sync))
        ax.annotate(f"crossover\nt = {r.crossover:.3g}", (r.crossover, y), xytext=(8, 25), textcoords="offset points",
                    fontsize=8, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock time")
    ax.set_ylabel("error  F(w) - F*")
    ax.grid(True, which="major", alpha=0.3)


# --------------------------------------------------------------------------------------------------
# the trade-off in K


@dataclasses.dataclass
class Tradeoff:
    configs: pd.DataFrame  # job, variant, K, final_error_mean, final_error_sem (after all updates)
    times: np.ndarray
    mean: np.ndarray  # (configs, times)
    sem: np.ndarray
    frontier: np.ndarray  # (times,) lowest mean error at each time
    best: np.ndarray  # (times,) index into configs of the config on the frontier
    horizon: float
    budgets: tuple[float, ...]
    at_budget: pd.DataFrame  # budget, variant, K, error, sem, best (bool)
    P: int


def tradeoff(t: C.Tables, variants: tuple[str, ...] = ("k_sync", "k_async", "k_batch_async"), points: int = 400) -> Tradeoff:
    s = t.summary
    cfg = s[s["variant"].isin(variants)].drop_duplicates("job")
    cfg = cfg[["job", "variant", "K", "P", "final_error_mean", "final_error_sem"]].copy()
    cfg["K"] = cfg["K"].astype(int)
    cfg["_v"] = cfg["variant"].map(variants.index)
    cfg = cfg.sort_values(["_v", "K"]).drop(columns="_v").reset_index(drop=True)
    ct = t.curves_time[t.curves_time["job"].isin(cfg["job"])]
    end = C.horizon(ct)
    times = C.log_times(ct, end, points)
    mean = np.empty((len(cfg), len(times)))
    sem = np.empty_like(mean)
    for i, job in enumerate(cfg["job"]):
        mean[i], sem[i] = _job_curve(ct, job, times)
    filled = np.where(np.isfinite(mean), mean, np.inf)
    best = np.argmin(filled, axis=0)
    frontier = filled[best, np.arange(len(times))]
    budgets = tuple(end * f for f in BUDGETS)
    rows = []
    for b in budgets:
        m = np.array([C.on_grid(ct[ct["job"] == j], np.array([b]), "error_mean")[0] for j in cfg["job"]])
        e = np.array([C.on_grid(ct[ct["job"] == j], np.array([b]), "error_sem")[0] for j in cfg["job"]])
        i_best = int(np.nanargmin(m))
        for i, row in cfg.iterrows():
            rows.append({"budget": b, "variant": row["variant"], "K": row["K"], "error": m[i], "sem": e[i], "best": i == i_best})
    return Tradeoff(cfg, times, mean, sem, frontier, best, end, budgets, pd.DataFrame(rows), int(cfg["P"].iloc[0]))


def best_at(r: Tradeoff) -> pd.DataFrame:
    """The best (variant, K) at each budget."""
    return r.at_budget[r.at_budget["best"]].reset_index(drop=True)


def config_name(variant: str, K: int, P: int) -> str:
    """'async' for the K=1 asynchronous variants, 'sync' for K-sync/K-async with K=P, else 'K-async K=3'."""
    if K == 1 and variant in ("k_async", "k_batch_async"):
        return "async"
    if K == P and variant in ("k_sync", "k_async"):
        return "sync"
    return f"{C.LABELS.get(variant, variant)} K={K}"


def frontier_path(r: Tradeoff, min_share: float = 0.04) -> list[tuple[float, str]]:
    """[(time from which it holds, name), ...]: the configs that make up the frontier, in time order.
    Stretches shorter than `min_share` of the log-time span (near-ties flickering in Monte Carlo noise)
    are merged into the stretch before them."""
    names = [config_name(r.configs.at[i, "variant"], int(r.configs.at[i, "K"]), r.P) for i in r.best]
    edges = np.log(np.append(r.times, r.times[-1]))
    runs: list[list] = []  # [start index, end index, name]
    for i, name in enumerate(names):
        if runs and runs[-1][2] == name:
            runs[-1][1] = i
        else:
            runs.append([i, i, name])

    def length(run) -> float:
        return edges[run[1] + 1] - edges[run[0]]

    span = edges[-1] - edges[0]
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda j: length(runs[j]))
        if length(runs[k]) >= min_share * span:
            break
        if k == 0 or (k + 1 < len(runs) and length(runs[k + 1]) > length(runs[k - 1])):
            runs[k + 1][0] = runs[k][0]  # into the longer neighbour
        else:
            runs[k - 1][1] = runs[k][1]
        del runs[k]
        merged = [runs[0]]
        for run in runs[1:]:
            if run[2] == merged[-1][2]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        runs = merged
    kept = runs
    return [(float(r.times[s]), name) for s, _, name in kept]


def tradeoff_checks(r: Tradeoff, where: str) -> list[C.Check]:
    out = []
    rhos = {}
    for v, g in r.configs.groupby("variant", sort=False):
        if g["K"].nunique() >= 3:
            rhos[v] = C.spearman(g["K"], g["final_error_mean"])
    if rhos:
        out.append(C.Check(
            f"{where}: a larger K lowers the error floor (error after all updates falls with K)",
            all(rho <= -0.8 for rho in rhos.values()),
            "Spearman rank correlation of K and final error: " + ", ".join(f"{C.LABELS[v]} {rho:+.2f}" for v, rho in rhos.items())
            + " (agreement: every one <= -0.8)",
        ))
    b = best_at(r)
    ks = b["K"].tolist()
    text = "; ".join(f"budget {row.budget:.4g}: {config_name(row.variant, row.K, r.P)} (error {row.error:.3g})"
                     for row in b.itertuples())
    out.append(C.Check(
        f"{where}: the best K grows with the wall-clock budget (small K wins early, large K late)",
        bool(all(x <= y for x, y in zip(ks, ks[1:])) and ks[0] < ks[-1]),
        text,
    ))
    return out


_STYLE = {"k_sync": "-", "k_async": "--", "k_batch_async": ":"}


def plot_frontier(ax, r: Tradeoff) -> None:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i, row in r.configs.iterrows():
        color = cmap((row["K"] - 1) / max(r.P - 1, 1))
        ax.plot(r.times, r.mean[i], color=color, ls=_STYLE.get(row["variant"], "-"), lw=0.9, alpha=0.8)
    ax.plot(r.times, r.frontier, color="k", lw=2.6, alpha=0.35, label="frontier (lowest error at each time)")
    for v, ls in _STYLE.items():
        if v in set(r.configs["variant"]):
            ax.plot([], [], color="grey", ls=ls, label=C.LABELS[v])
    for b in r.budgets:
        ax.axvline(b, color="grey", lw=0.8, ls="-.")
    sm = _scalar_mappable(cmap, r.P)
    ax.figure.colorbar(sm, ax=ax, label="K", ticks=sorted(r.configs["K"].unique()), pad=0.01)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock time (dash-dot: the budgets)")
    ax.set_ylabel("error  F(w) - F*")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left")


def _scalar_mappable(cmap, P: int):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return ScalarMappable(norm=Normalize(1, max(P, 2)), cmap=cmap)


def plot_frontier_K(ax, r: Tradeoff) -> None:
    """The K of the config on the frontier against time, marked by variant."""
    K = r.configs["K"].to_numpy()[r.best]
    var = r.configs["variant"].to_numpy()[r.best]
    ax.step(r.times, K, where="post", color="k", lw=1)
    for v in _STYLE:
        sel = var == v
        if sel.any():
            ax.scatter(r.times[sel], K[sel], s=9, color=C.COLORS[v], label=C.LABELS[v], zorder=3)
    for b in r.budgets:
        ax.axvline(b, color="grey", lw=0.8, ls="-.")
    ax.set_xscale("log")
    ax.set_yticks(sorted(r.configs["K"].unique()))
    ax.set_xlabel("wall-clock time")
    ax.set_ylabel("K on the frontier")
    ax.set_title("which configuration is best at each time", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")


def plot_budgets(axes, r: Tradeoff) -> None:
    for ax, b in zip(axes, r.budgets):
        sub = r.at_budget[r.at_budget["budget"] == b]
        for v, g in sub.groupby("variant", sort=False):
            ax.errorbar(g["K"], g["error"], yerr=2 * g["sem"], fmt="o" + _STYLE.get(v, "-"), ms=4, lw=1,
                        color=C.COLORS[v], label=C.LABELS[v])
        best = sub[sub["best"]].iloc[0]
        ax.scatter([best["K"]], [best["error"]], marker="*", s=220, color="gold", edgecolor="k", zorder=4,
                   label=f"best: {C.LABELS[best['variant']]} K={best['K']}")
        ax.set_yscale("log")
        ax.set_xticks(sorted(sub["K"].unique()))
        ax.set_xlabel("K")
        ax.set_ylabel(f"error at t = {b:.4g}")
        ax.set_title(f"budget t = {b:.4g}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
