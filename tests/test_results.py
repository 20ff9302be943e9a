"""Aggregation of per-replica records (jaxsgd.results, SPEC §8) against direct pandas computations.

Most tests build a Result from synthetic records (no compilation); one engine run on the NQM with a
learning-rate grid where one point is stable, one diverges for a fraction of the replicas and one for
all of them checks the same on real output.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jaxsgd
from jaxsgd.delays import Exponential
from jaxsgd.lr import Constant
from jaxsgd.problems import NoisyQuadratic
from jaxsgd.results import QUANTILES, Records, Result
from jaxsgd.variants import resolve

QCOLS = {q: f"error_q{round(q * 100)}" for q in QUANTILES}
SUMMARY_KEYS = {
    "variant", "P", "K", "replicas", "updates", "time_per_update", "time_per_update_theory", "staleness_mean",
    "fresh_fraction", "final_error_mean", "diverged_fraction", "compile_seconds", "run_seconds",
}


def synthetic(error: np.ndarray, time: np.ndarray, etas, record_every: int = 5, seed: int = 0) -> Result:
    """A Result around given records: error (G, R, n), time (R, n)."""
    G, R, n = error.shape
    rng = np.random.default_rng(seed)
    staleness = rng.integers(0, 4, size=(R, n)).astype(np.float64)
    staleness[:, 0] = np.nan
    records = Records(update=np.arange(n) * record_every, time=time, staleness=staleness, error=error, accuracy=None)
    return Result(
        setting=resolve("k_batch_async", 4, 2), delay=Exponential(1.0), problem=NoisyQuadratic(dim=3),
        lr=Constant(eta=list(etas)), optimizer=jaxsgd.Optimizer(), speeds=None, updates=int(record_every * (n - 1)),
        replicas=R, record_every=record_every, batch_size=1, seed=seed, records=records,
        staleness_mean=float(np.nanmean(staleness)), fresh_fraction=0.25, compile_seconds=1.5, run_seconds=0.5,
    )


@pytest.fixture(scope="module")
def synth() -> Result:
    """3 grid points x 15 replicas x 12 records: point 0 finite, point 1 with 3 diverged replicas,
    point 2 fully diverged. Times have ties (two updates at the same moment)."""
    rng = np.random.default_rng(42)
    G, R, n = 3, 15, 12
    dt = rng.exponential(1.0, size=(R, n))
    dt[:, 0] = 0.0
    dt[3, 5] = dt[8, 2] = dt[8, 3] = 0.0  # simultaneous updates
    time = np.cumsum(dt, axis=1)
    error = rng.lognormal(0.0, 1.0, size=(G, R, n)) * np.exp(-0.2 * np.arange(n))
    error[1, 2, 7:] = np.inf
    error[1, 5, 11] = np.nan
    error[1, 11, 3:] = np.nan
    error[2, :, 4:] = np.nan
    error[2, :2, 2] = np.inf
    return synthetic(error, time, etas=(0.1, 0.2, 0.4))


@pytest.fixture(scope="module")
def diverging() -> Result:
    """NQM, k_sync: eta 0.5 is stable, 2.1 blows up (|1 - eta| > 1) at a random moment near the horizon,
    so a fraction of the replicas overflows to inf within 456 updates; eta 4.0 overflows in all."""
    prob = NoisyQuadratic(dim=4, h_max=1.0, h_min=0.1, sigma2=1.0, init=1.0)
    return jaxsgd.simulate(prob, "k_sync", P=3, K=1, delay=Exponential(1.0), lr=Constant(eta=[0.5, 2.1, 4.0]),
                           updates=456, record_every=4, replicas=200, seed=5)


def kept_replicas(rr: pd.DataFrame) -> pd.Series:
    """Per replica: whether all its errors are finite."""
    return rr.groupby("replica")["error"].apply(lambda e: bool(np.all(np.isfinite(e.to_numpy()))))


def pandas_curves_time(res: Result, times: np.ndarray) -> pd.DataFrame:
    """The error of the last update with t_j <= t per replica (merge_asof), aggregated over finite replicas."""
    rr = res.replica_records()
    frames = []
    for eta in res.grid["eta"]:
        sub = rr[rr["eta"] == eta]
        keep = kept_replicas(sub)
        right = sub[["replica", "time", "update", "error"]].sort_values(["time", "update"], kind="stable")
        left = pd.DataFrame({"time": np.repeat(times, res.replicas), "replica": np.tile(np.arange(res.replicas), len(times))})
        at = pd.merge_asof(left.sort_values("time", kind="stable"), right, on="time", by="replica", direction="backward")
        at = at[at["replica"].map(keep)]
        grouped = at.groupby("time")["error"]
        out = pd.DataFrame({"error_mean": grouped.mean(), "error_sem": grouped.sem()})
        for q, col in QCOLS.items():
            out[col] = grouped.quantile(q)
        out = out.reindex(pd.Index(times, name="time"))  # NaN where nothing is kept
        out["replicas_finite"] = int(keep.sum())
        out.insert(0, "eta", eta)
        frames.append(out.reset_index())
    return pd.concat(frames, ignore_index=True)


def check_curves_time(res: Result, times=None):
    got = res.curves_time(times)
    times = res.time_grid() if times is None else np.asarray(times, dtype=np.float64)
    expected = pandas_curves_time(res, times)
    assert list(got.columns) == ["eta", "time", "error_mean", "error_sem", *QCOLS.values(), "replicas_finite"]
    pd.testing.assert_frame_equal(got[expected.columns].reset_index(drop=True), expected, check_dtype=False,
                                  rtol=1e-10, atol=0)


def check_curves(res: Result):
    rr = res.replica_records()
    got = res.curves()
    for eta in res.grid["eta"]:
        sub = rr[rr["eta"] == eta]
        keep = kept_replicas(sub)
        finite = sub[sub["replica"].map(keep)]
        g = got[got["eta"] == eta].set_index("update")
        all_rows = sub.groupby("update")
        np.testing.assert_allclose(g["time_mean"], all_rows["time"].mean(), rtol=1e-12)
        np.testing.assert_allclose(g["staleness_mean"], all_rows["staleness_mean"].mean(), rtol=1e-12)
        assert (g["replicas_finite"] == keep.sum()).all()
        if keep.sum() == 0:
            assert g[["error_mean", "error_sem", *QCOLS.values()]].isna().all().all()
            continue
        by = finite.groupby("update")["error"]
        np.testing.assert_allclose(g["error_mean"], by.mean(), rtol=1e-12)
        np.testing.assert_allclose(g["error_sem"], by.sem(), rtol=1e-10)
        for q, col in QCOLS.items():
            np.testing.assert_allclose(g[col], by.quantile(q), rtol=1e-12)


def direct_time_to_target(res: Result, target: float) -> pd.DataFrame:
    rr = res.replica_records()
    rows = []
    for eta in res.grid["eta"]:
        sub = rr[rr["eta"] == eta].sort_values(["replica", "update"])
        diverged = sub.groupby("replica")["error"].apply(lambda e: not np.isfinite(e).all())
        first = sub[sub["error"] <= target].groupby("replica")["time"].first()
        first = first[~diverged.loc[first.index].to_numpy()]  # a replica that diverged counts as never
        row = {"eta": eta, "reached_fraction": len(first) / res.replicas, "never_fraction": 1 - len(first) / res.replicas}
        for q in QUANTILES:
            row[f"time_to_target_q{round(q * 100)}"] = float(first.quantile(q)) if len(first) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def check_time_to_target(res: Result, target: float):
    got = res.time_to_target(target)
    expected = direct_time_to_target(res, target)
    assert (got["target_error"] == target).all()
    for col in expected.columns:
        np.testing.assert_allclose(got[col].astype(float), expected[col].astype(float), rtol=1e-12, err_msg=col)


# ---------------------------------------------------------------------------- synthetic records


def test_curves_time_matches_pandas_merge_asof(synth):
    t = synth.records.time
    times = np.unique(np.concatenate([[0.0], t[3, :6], t[8, 1:5], np.linspace(0, t.max() * 1.1, 17)]))
    check_curves_time(synth, times)  # including times exactly at (tied) updates and beyond every replica's end
    check_curves_time(synth)  # the default grid, up to the earliest final time


def test_default_time_grid(synth):
    g = synth.time_grid()
    assert g[0] == 0.0 and g[-1] == synth.records.time[:, -1].min() and len(g) == synth.records.update.shape[0]
    assert len(synth.time_grid(5)) == 5


def test_curves_matches_groupby(synth):
    check_curves(synth)
    c = synth.curves()
    assert c.groupby("eta")["replicas_finite"].first().tolist() == [15, 12, 0]


def test_diverged_counted_and_excluded(synth):
    np.testing.assert_allclose(synth.diverged_fraction, [0.0, 3 / 15, 1.0])
    assert synth.diverged[1].nonzero()[0].tolist() == [2, 5, 11]
    gs = synth.grid_summary()
    assert gs["diverged_fraction"].tolist() == pytest.approx([0.0, 0.2, 1.0])
    finals = synth.records.error[1][~synth.diverged[1], -1]
    assert gs.loc[1, "final_error_mean"] == pytest.approx(finals.mean(), rel=1e-12)
    assert gs.loc[2, "final_error_mean"] is None or np.isnan(gs.loc[2, "final_error_mean"])


@pytest.mark.parametrize("target", [0.05, 0.3, 1.0])
def test_time_to_target_matches_direct_computation(synth, target):
    # (targets every diverged replica misses; for one they reach before diverging see the test below)
    check_time_to_target(synth, target)


def test_time_to_target_diverged_count_as_never(synth):
    ttt = synth.time_to_target(1e9)  # every replica starts below the target
    np.testing.assert_allclose(ttt["never_fraction"], synth.diverged_fraction)


def test_summary_is_json_and_complete(synth):
    s = synth.summary()
    assert SUMMARY_KEYS <= set(s), SUMMARY_KEYS - set(s)
    json.loads(json.dumps(s, allow_nan=False))
    assert s["variant"] == "k_batch_async" and (s["P"], s["K"]) == (4, 2)
    assert s["replicas"] == 15 and s["updates"] == 55
    assert s["time_per_update"] == pytest.approx(synth.records.time[:, -1].mean() / 55)
    assert s["time_per_update_theory"] == pytest.approx(2 * 1.0 / 4)  # K E[X] / P
    assert len(s["grid"]) == 3 and s["grid"][2]["final_error_mean"] is None
    json.loads(json.dumps(synth.summary(target_error=0.5), allow_nan=False))


def test_summary_when_everything_diverged(synth):
    every = synthetic(np.full((2, 4, 5), np.nan), synth.records.time[:4, :5], etas=(1.0, 2.0))
    assert every.diverged_fraction.tolist() == [1.0, 1.0]
    assert (every.curves()["replicas_finite"] == 0).all() and every.curves()["error_mean"].isna().all()
    assert every.curves_time()["error_mean"].isna().all()
    s = every.summary(target_error=0.1)
    json.loads(json.dumps(s, allow_nan=False))
    assert s["all_diverged"] is True and s["final_error_mean"] is None and s["diverged_fraction"] == 1.0


def test_best_picks_lowest_final_error(synth):
    rng = np.random.default_rng(1)
    error = rng.uniform(0.9, 1.1, size=(3, 6, 4)) * np.array([0.3, 0.1, 0.2])[:, None, None]
    res = synthetic(error, synth.records.time[:6, :4], etas=(0.1, 0.2, 0.4))
    assert res.best() == 1
    assert res.summary()["best_grid_point"] == {"eta": 0.2}


# ---------------------------------------------------------------------------- engine output


def test_engine_divergence_fraction(diverging):
    frac = diverging.diverged_fraction
    assert frac[0] == 0.0 and 0.1 < frac[1] < 0.9 and frac[2] == 1.0
    c = diverging.curves()
    finite = c.groupby("eta")["replicas_finite"].first()
    assert finite.tolist() == [200, int(round(200 * (1 - frac[1]))), 0]
    full = c[c["eta"] == 4.0]
    assert full[["error_mean", "error_sem", *QCOLS.values()]].isna().all().all()
    # the partially diverged point aggregates only its finite replicas, which are finite everywhere
    part = c[c["eta"] == 2.1]
    assert np.all(np.isfinite(part["error_mean"])) and np.all(np.isfinite(part["error_q90"]))


def test_engine_curves_and_curves_time(diverging):
    check_curves(diverging)
    check_curves_time(diverging)
    times = np.linspace(0.0, float(diverging.records.time.max()), 41)
    check_curves_time(diverging, times)


def test_engine_time_to_target(diverging):
    for target in (0.3, 0.05):
        check_time_to_target(diverging, target)
    ttt = diverging.time_to_target(0.05)
    assert ttt.loc[0, "reached_fraction"] > 0.5 and ttt.loc[2, "reached_fraction"] == 0.0


def test_engine_summary(diverging):
    s = diverging.summary(target_error=0.3)
    assert SUMMARY_KEYS <= set(s)
    json.loads(json.dumps(s, allow_nan=False))
    assert (s["variant"], s["P"], s["K"], s["replicas"], s["updates"]) == ("k_sync", 3, 1, 200, 456)
    assert s["staleness_mean"] == 0.0 and s["fresh_fraction"] == 1.0
    assert s["compile_seconds"] >= 0 and s["run_seconds"] > 0
    assert s["time_per_update_theory"] == pytest.approx(1 / 3)  # E[X_{1:3}] for Exponential(1)
    assert s["time_per_update"] == pytest.approx(1 / 3, rel=0.05)
    assert s["best_grid_point"] == {"eta": 0.5} and s["diverged_fraction"] == 0.0
    assert [row["diverged_fraction"] for row in s["grid"]] == pytest.approx(list(diverging.diverged_fraction))
