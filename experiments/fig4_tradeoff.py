"""Figure 4: the error-runtime trade-off in K on the noisy quadratic model. K-sync, K-async and
K-batch-async for K = 1..P: every error-vs-time curve with the frontier (the lowest error at each time),
which configuration is on the frontier when, and the error reached by three wall-clock budgets against K.
Experiment: conf/experiment/fig4_tradeoff.yaml."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

try:
    from . import common as C
    from . import race as R
except ImportError:  # run as a script from experiments/
    import common as C
    import race as R

NAME = "fig4_tradeoff"
TITLE = "Error-runtime trade-off in K (NQM)"


def tradeoff_figure(t: C.Tables, r: R.Tradeoff, title: str, race: R.Race | None = None):
    """Top: [sync vs async,] all curves with the frontier, K on the frontier; bottom: error at the budgets vs K."""
    fig = C.new_figure(15, 9)
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.15, 1))
    if race is None:
        ax_f, ax_k = top.subplots(1, 2, width_ratios=(1.5, 1))
    else:
        ax_r, ax_f, ax_k = top.subplots(1, 3, width_ratios=(1, 1.2, 0.9))
        R.plot_race(ax_r, race, labels=(f"sync (K-sync, K={r.P})", "async (K-batch-async, K=1)"))
        ax_r.set_xlim(race.times[0], race.horizon)
        ax_r.legend(fontsize=7.5, loc="lower left")
        ax_r.set_title("sync vs async at the same learning rate", fontsize=9)
    R.plot_frontier(ax_f, r)
    ax_f.set_title("every variant and K, and the frontier", fontsize=9)
    R.plot_frontier_K(ax_k, r)
    R.plot_budgets(bottom.subplots(1, len(r.budgets), sharey=False), r)
    fig.suptitle(title, fontsize=11)
    return fig


def budget_table(r: R.Tradeoff) -> pd.DataFrame:
    """K down; per budget and variant the error (mean ± SE), the best marked with *."""
    out = pd.DataFrame({"K": sorted(r.configs["K"].unique())}).set_index("K")
    for b in r.budgets:
        sub = r.at_budget[r.at_budget["budget"] == b]
        for v, g in sub.groupby("variant", sort=False):
            g = g.set_index("K")
            out[f"t={b:.4g} {C.LABELS[v]}"] = [
                (C.pm(g.at[K, "error"], g.at[K, "sem"], 3) + (" *" if g.at[K, "best"] else "")) if K in g.index else "-"
                for K in out.index]
    return out.reset_index()


def describe(r: R.Tradeoff, cs: list[C.Check], where: str) -> str:
    path = R.frontier_path(r)
    b = R.best_at(r)
    floor, grows = cs[0], cs[-1]
    words = (f"In {where}, the frontier runs through " + ", then ".join(f"{n} (from t ≈ {t0:.3g})" for t0, n in path[:8])
             + (", ..." if len(path) > 8 else "") + ". ")
    words += (f"The best configuration at the budgets t = {', '.join(f'{x:.3g}' for x in r.budgets)} is "
              + ", ".join(R.config_name(row.variant, row.K, r.P) for row in b.itertuples()) + ": ")
    words += ("the best K grows with the budget, which is the paper's error-runtime trade-off (agrees)."
              if grows.passed else "the best K does not grow with the budget as the paper's trade-off predicts (disagrees).")
    if floor is not grows:
        words += f" A larger K {'lowers' if floor.passed else 'does not consistently lower'} the error floor ({floor.detail})."
    return words


def draw(t: C.Tables, out: Path) -> C.Section:
    r = R.tradeoff(t)
    law = C.describe_law(t.summary.iloc[0])
    eta = C.first(t.summary, "lr.eta")
    fig = tradeoff_figure(t, r, f"Figure 4: error-runtime trade-off in K on the noisy quadratic model "
                                f"(P={r.P}, {law}, eta={eta:g}; bands and bars ±2 SE)")
    image = C.save(fig, out / f"{NAME}.png")
    cs = R.tradeoff_checks(r, "NQM")
    text = [
        f"Error against wall-clock time for K-sync, K-async and K-batch-async with K = 1..{r.P} at the same learning "
        f"rate ({C.scale_note(t)}; every job runs the same number of updates, so the common horizon t = "
        f"{r.horizon:.4g} is that of the fastest). Colour gives K, line style the variant; the grey band is the "
        "frontier. The bottom row reads the error at three budgets.",
        describe(r, cs, "the noisy quadratic model"),
    ]
    return C.Section(NAME, TITLE, image, text, cs, [("Error at each budget (mean ± SE; * best)", budget_table(r))])


EXPERIMENT = C.Experiment(
    NAME, NAME, TITLE, draw,
    paper=("replicas=10000",),
    tiny=("replicas=8", "updates=60", "record_every=10", "problem.dim=4", "K=1,2,4", "P=4"),
)
