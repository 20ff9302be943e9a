"""The application end to end, as a user runs it (`python -m jaxsgd ...` in a subprocess): one job writes
every file with the documented columns, a multirun is gathered into one table, `jaxsgd-plot` redraws
the figures, and bad input ends with a non-zero status, one message naming the key, no traceback and no
result file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from jaxsgd import plot, problems
from jaxsgd.app import FILES

SMALL = ["P=4", "K=2", "replicas=6", "updates=40", "record_every=10", "problem.dim=4", "progress=false"]
STATS = ["error_mean", "error_sem", "error_q10", "error_q50", "error_q90"]
KEYS = ["variant", "P", "K", "delay", "delay.shift", "delay.rate", "problem", "problem.dim", "lr", "lr.eta",
        "optimizer", "batch_size"]
SUMMARY_KEYS = ["variant", "P", "K", "replicas", "updates", "time_per_update", "time_per_update_theory",
                "staleness_mean", "fresh_fraction", "final_error_mean", "diverged_fraction", "time_to_target_q10",
                "time_to_target_q50", "time_to_target_q90", "compile_seconds", "run_seconds", "jaxsgd_version",
                "jax_version", "config", "overrides", "grid", "keys"]


def _command(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "jaxsgd", *args, f"compilation_cache={cache}"]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def jaxsgd(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args, cache=cache), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xla_cache")


def _no_partial_files(d: Path) -> None:
    assert not [p.name for p in d.rglob("*.tmp")], "a temporary file was left behind"


def test_one_job_writes_every_file(tmp_path, cache):
    out = tmp_path / "run"
    r = jaxsgd(*SMALL, "variant=k_sync", "save_replicas=true", "target_error=2.0", "lr.eta=[0.05,0.1]",
               f"hydra.run.dir={out}", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "k_sync P=4 K=2" in r.stderr and "final error" in r.stderr  # the job's log line
    assert {p.name for p in out.iterdir() if p.is_file()} >= set(FILES)
    _no_partial_files(out)

    curves = pd.read_parquet(out / "curves.parquet")
    assert set(KEYS + ["update", "time_mean", *STATS, "staleness_mean", "error_theory"]) <= set(curves.columns)
    assert sorted(curves["lr.eta"].unique()) == [0.05, 0.1] and (curves["variant"] == "k_sync").all()
    assert len(curves) == 2 * 5 and curves["error_theory"].notna().all()  # exact NQM recursion for k_sync
    curves_time = pd.read_parquet(out / "curves_time.parquet")
    assert set(KEYS + ["time", *STATS]) <= set(curves_time.columns)
    replicas = pd.read_parquet(out / "replicas.parquet")
    assert {"replica", "update", "time", "error"} <= set(replicas.columns) and len(replicas) == 2 * 6 * 5

    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert (summary["variant"], summary["P"], summary["K"], summary["replicas"]) == ("k_sync", 4, 2, 6)
    assert summary["time_per_update_theory"] == pytest.approx(summary["time_per_update"], rel=0.2)
    assert len(summary["grid"]) == 2 and summary["config"]["problem"]["dim"] == 4
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"

    assert plot.main([str(out)]) == 0  # jaxsgd-plot on a job directory redraws its figure


def test_multirun_is_gathered_into_one_table(tmp_path, cache, capsys):
    root = tmp_path / "sweep"
    # the same lr grid as the single job above: k_sync's compiled code comes from the cache
    r = jaxsgd("--multirun", *SMALL, "variant=k_sync,k_batch_async", "seed=3", "lr.eta=[0.05,0.1]", "target_error=2.0",
               f"hydra.sweep.dir={root}", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for variant in ("k_sync", "k_batch_async"):
        assert variant in r.stdout  # the printed table
    assert f"figure: {root / 'sweep_figure.png'}" in r.stdout
    _no_partial_files(root)

    summary = pd.read_parquet(root / "sweep_summary.parquet")  # one row per job and grid point
    assert len(summary) == 4
    assert {"job", "variant", "seed", "lr.eta", "K", "time_per_update", "time_per_update_theory", "final_error_mean",
            "time_to_target_q50", "staleness_mean"} <= set(summary.columns)
    assert sorted(zip(summary["variant"], summary["lr.eta"])) == [("k_batch_async", 0.05), ("k_batch_async", 0.1),
                                                                  ("k_sync", 0.05), ("k_sync", 0.1)]
    assert (summary["seed"] == 3).all()  # an overridden key that is not a setting still gets its column
    curves = pd.read_parquet(root / "sweep_curves.parquet")
    assert {"job", "variant", "seed", "lr.eta", "update", "time_mean", *STATS} <= set(curves.columns)
    assert curves.groupby(["variant", "lr.eta"]).size().tolist() == [5, 5, 5, 5]
    assert set(pd.read_parquet(root / "sweep_curves_time.parquet")["job"]) == set(summary["job"])

    (root / "sweep_figure.png").unlink()
    assert plot.main([str(root)]) == 0  # jaxsgd-plot DIR
    assert "k_batch_async" in capsys.readouterr().out and (root / "sweep_figure.png").is_file()


BAD = {  # case: (arguments, exit status (None: Hydra's own), what the message must say)
    "unknown option": (["delay=paretoo"], 2, ["delay='paretoo' is not known", "shifted_exponential", "Did you mean 'pareto'"]),
    "out of range": (["delay.rate=-1"], 2, ["delay.rate=-1.0 is invalid: must be a finite number > 0"]),
    "K above P": (["variant=k_async", "K=9"], 2, ["K=9 is invalid for variant=k_async: must be in 1..P (P=8)"]),
    "missing file": (["delay=trace", "delay.path=missing.csv"], 2, ["delay.path='missing.csv' is invalid: no such file"]),
    "in a sweep": (["--multirun", "variant=k_sync,k_async", "K=9"], 2, ["K=9 is invalid for variant=k_sync"]),
    "in a later job of a sweep": (["--multirun", "P=8,2", "variant=k_async", "K=4"], 2,
                                  ["job 1 of the sweep (P=2): K=4 is invalid for variant=k_async", "No job was run"]),
}
if "npz" in problems.PROBLEMS:
    BAD["missing data"] = (["problem=npz", "problem.path=missing.npz"], 2, ["problem.path"])


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, cache) -> dict:
    """Every bad input, run concurrently: {case: (CompletedProcess-like, output dir)}."""
    base = tmp_path_factory.mktemp("bad")
    running = {}
    for i, (case, (args, _, _)) in enumerate(BAD.items()):
        out = base / str(i)
        cmd = _command(*args, f"hydra.run.dir={out}", f"hydra.sweep.dir={out}", cache=cache)
        running[case] = (subprocess.Popen(cmd, cwd=base, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True), out)
    done = {}
    for case, (proc, out) in running.items():
        stdout, stderr = proc.communicate(timeout=600)
        done[case] = (proc.returncode, stdout + stderr, out)
    return done


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_cleanly(case, bad_runs):
    _, status, fragments = BAD[case]
    returncode, output, out = bad_runs[case]
    assert returncode != 0 and (status is None or returncode == status), output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in output
    written = [p.name for p in out.rglob("*") if p.name in FILES or p.name.startswith("sweep_")] if out.exists() else []
    assert written == [], "a bad input left result files"


@pytest.mark.slow
def test_submitit_local_sweep(tmp_path, cache):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    root = tmp_path / "sweep"
    r = jaxsgd("--multirun", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *SMALL,
               "variant=k_sync,k_async", f"hydra.sweep.dir={root}", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    summary = pd.read_parquet(root / "sweep_summary.parquet")
    assert sorted(summary["variant"]) == ["k_async", "k_sync"]
