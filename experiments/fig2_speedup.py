"""Figure 2: the speed-up of async over sync, E[T_sync] / E[T_async], against the number of workers P,
with P*H_P (exponential) and E[X_P:P] / (E[X]/P) (theory.speedup_async_over_sync; shifted exponential).
Experiment: conf/experiment/fig2_speedup.yaml."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsgd import theory

try:
    from . import common as C
except ImportError:  # run as a script from experiments/
    import common as C

NAME = "fig2_speedup"
TITLE = "Speed-up of async over sync vs P"


def table(t: C.Tables) -> pd.DataFrame:
    """One row per (law, P): simulated E[T] of sync and async, the speed-up ± SE, theory, z, ok."""
    keys = ["variant", "P", "K", "delay", *[c for c in t.curves if c.startswith("delay.")]]
    rates = C.job_rates(t.curves, keys)
    rows = []
    for (delay, P), g in rates.groupby(["delay", "P"], sort=True):
        g = g.set_index("variant")
        if not {"sync", "async"} <= set(g.index):
            continue
        law = C.delay_law(g.loc["sync"])
        s, ss = g.at["sync", "time_per_update"], g.at["sync", "time_per_update_se"]
        a, sa = g.at["async", "time_per_update"], g.at["async", "time_per_update_se"]
        speedup, se = s / a, C.ratio_se(s, ss, a, sa)
        th = theory.speedup_async_over_sync(int(P), law)
        z = C.zscore(speedup, se, th)  # checked against C.z_limit of the figure's comparisons below
        rows.append({"delay": delay, "law": law.describe(), "law_obj": law, "P": int(P), "sync": s, "sync_se": ss,
                     "sync_theory": theory.time_per_update("sync", int(P), None, law), "async": a, "async_se": sa,
                     "async_theory": theory.time_per_update("async", int(P), None, law), "speedup": speedup,
                     "speedup_se": se, "theory": th, "z": z})
    df = pd.DataFrame(rows)
    df["limit"] = C.z_limit(len(df))
    df["ok"] = df["z"].abs() <= df["limit"]
    return df


def checks(df: pd.DataFrame) -> list[C.Check]:
    out = []
    for delay, g in df.groupby("delay", sort=False):
        law = g.law.iloc[0]
        formula = "P*H_P" if delay == "exponential" else "E[X_P:P] / (E[X]/P)"
        bad = g[~g.ok]
        out.append(C.Check(
            f"{law}: the simulated speed-up of async over sync follows {formula}",
            bad.empty,
            f"{len(g) - len(bad)} of {len(g)} P within {g.limit.iloc[0]:.3g} SE (largest |z| = {g.z.abs().max():.2f}); "
            f"speed-up {g.speedup.iloc[0]:.3g} at P={g.P.iloc[0]} to {g.speedup.iloc[-1]:.4g} at P={g.P.iloc[-1]}",
        ))
    # growth: P log P for exponential (faster than linear), about P (1 + H_P) / 2 for the shifted law
    exp = df[df.delay == "exponential"].sort_values("P")
    if len(exp) >= 2:
        per_worker = (exp.speedup / exp.P).to_numpy()
        grows = bool(np.all(np.diff(per_worker) > 0))
        out.append(C.Check(
            "exponential: the speed-up grows faster than P (like P log P)",
            grows,
            "speed-up / P = " + ", ".join(f"{v:.2f}" for v in per_worker) + f" for P = {', '.join(map(str, exp.P))}",
        ))
    return out


def draw(t: C.Tables, out: Path) -> C.Section:
    df = table(t)
    fig = C.new_figure(12, 4.8)
    ax, ax_r = fig.subplots(1, 2, width_ratios=(1.4, 1))
    Ps = np.arange(2, int(df.P.max()) + 1)
    groups = list(df.groupby("delay", sort=False))
    for i, ((delay, g), color) in enumerate(zip(groups, ("C0", "C3", "C2"))):
        law = g.law_obj.iloc[0]
        curve = [theory.speedup_async_over_sync(int(P), law) for P in Ps]
        name = "P·H_P" if delay == "exponential" else "E[X_P:P] / (E[X]/P)"
        ax.plot(Ps, curve, color=color, lw=1.3, label=f"theory {name}: {g.law.iloc[0]}")
        ax.errorbar(g.P, g.speedup, yerr=2 * g.speedup_se.fillna(0), fmt="o", color=color, ms=5,
                    label=f"simulated: {g.law.iloc[0]}", zorder=3)
        shift = 1.04 ** (i - (len(groups) - 1) / 2)  # side by side
        ax_r.errorbar(g.P * shift, g.speedup / g.theory - 1, yerr=2 * g.speedup_se.fillna(0) / g.theory, fmt="o-", ms=4,
                      color=color, label=g.law.iloc[0])
    ax.plot(Ps, Ps, color="grey", ls=":", lw=1, label="P (linear)")
    for a in (ax, ax_r):
        a.set_xscale("log", base=2)
        a.set_xticks(sorted(df.P.unique()), [str(p) for p in sorted(df.P.unique())])
        a.set_xlabel("P (workers)")
        a.grid(True, alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("speed-up  E[T_sync] / E[T_async]")
    ax.legend(fontsize=7.5)
    ax_r.axhline(0, color="k", lw=0.8)
    ax_r.set_ylabel("simulated / theory - 1  (±2 SE)")
    ax_r.legend(fontsize=7.5)
    fig.suptitle("Figure 2: speed-up of async over sync vs P", fontsize=11)
    image = C.save(fig, out / f"{NAME}.png")

    cs = checks(df)
    agree = all(c.passed for c in cs)
    text = [
        f"Ratio of the mean time per update of sync (K-sync with K=P) to that of async (K=1) for P = "
        f"{', '.join(map(str, sorted(df.P.unique())))} ({C.scale_note(t)}); the right panel shows the relative "
        "deviation from theory.",
        ("The simulated speed-ups agree with the theory for every P and both laws, and the exponential speed-up grows "
         "like P log P, as the paper states." if agree else
         "The simulated speed-ups disagree with the theory in some cases: " + "; ".join(
             f"{c.claim} — {c.detail}" for c in cs if not c.passed) + "."),
    ]
    tab = pd.DataFrame({
        "law": df.law, "P": df.P,
        "E[T] sync sim": [C.pm(v, s) for v, s in zip(df.sync, df.sync_se)],
        "E[T] sync theory": df.sync_theory.map(C.fmt),
        "E[T] async sim": [C.pm(v, s) for v, s in zip(df["async"], df.async_se)],
        "E[T] async theory": df.async_theory.map(C.fmt),
        "speed-up sim": [C.pm(v, s) + ("" if ok else " ✗") for v, s, ok in zip(df.speedup, df.speedup_se, df.ok)],
        "speed-up theory": df.theory.map(C.fmt),
        "z": df.z.map(lambda z: f"{z:+.2f}" if math.isfinite(z) else "-"),
    })
    return C.Section(NAME, TITLE, image, text, cs, [("Speed-up simulated vs theory", tab)])


EXPERIMENT = C.Experiment(
    NAME, NAME, TITLE, draw,
    paper=("replicas=10000", "updates=10000", "record_every=50", "precision=64"),
    tiny=("replicas=8", "updates=40", "record_every=10", "P=2,4", "delay=exponential"),
)
