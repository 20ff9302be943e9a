"""`make bench` works: benchmarks/bench.py --quick runs end to end and writes its JSON report.

Only the mechanism is checked here -- speed is never asserted in unit tests (it depends on the machine
and on whatever else runs on it); the numbers go in the README from a full run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_bench_quick_writes_the_report(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "traj-updates/s" in proc.stdout and "jaxsgd/roofline" in proc.stdout  # the table was printed
    report = json.loads(out.read_text())

    for key in ("machine", "workload", "methods", "ratios", "timeline", "scaling", "memory", "targets"):
        assert key in report, key
    # on CPU the engine runs NQM dim 100 padded to 104 coordinates, and the padded roofline with it
    assert set(report["methods"]) == {"naive", "numpy", "roofline", "roofline_padded", "jaxsgd"}
    assert report["ratios"]["jaxsgd_over_roofline_padded"] > 0
    # the padded roofline computes the same trajectories as the plain one
    assert report["methods"]["roofline_padded"]["final_error_mean"] == report["methods"]["roofline"]["final_error_mean"]
    for name, m in report["methods"].items():
        assert m["trajectory_updates_per_second"] > 0, name
        assert m["seconds"] > 0 and m["replicas"] > 0, name
    assert report["methods"]["jaxsgd"]["compile_seconds"] > 0
    assert report["methods"]["jaxsgd"]["devices"] >= 1
    for key in ("jaxsgd_over_roofline", "jaxsgd_over_numpy", "jaxsgd_over_naive"):
        assert report["ratios"][key] > 0
    assert report["timeline"]["trajectory_updates_per_second"] > 0
    for axis in ("replicas", "P", "updates"):
        rows = report["scaling"][axis]
        assert len(rows) >= 2 and all(r["run_seconds"] > 0 for r in rows)
    assert report["memory"]["jaxsgd"]["peak_rss_mb"] > 0
    assert report["memory"]["jaxsgd"]["device_peak_mb"] is None  # on CPU the memory is the process's own
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bench.json")] == ["bench.json"]  # no temp file left
    # the staleness-aware runs simulate the same k_async process: mean staleness (P - K) / K
    w = report["workload"]
    for name in ("numpy", "jaxsgd"):
        assert 0 < report["methods"][name]["staleness_mean"] < w["P"]


@pytest.mark.slow
def test_ablation_runs_and_restores_the_engine(tmp_path):
    """benchmarks/ablation.py runs end to end at a tiny size and prints its breakdown."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "--rounds", "1", "--replicas", "32", "--updates", "100"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("roofline", "jaxsgd", "no-tl", "no-tl-w", "timeline", "per-worker models", "structure"):
        assert name in proc.stdout, name


@pytest.mark.slow
def test_profile_engine_sums_the_kernels(tmp_path):
    """benchmarks/profile_engine.py profiles one small run and writes its kernel table and HLO."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_engine.py"), "--replicas", "64", "--updates", "100",
         "--out", str(tmp_path / "prof"), "--hlo", "--blocks", "32", "--top", "5"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "blocks of 32" in proc.stdout
    table = (tmp_path / "prof" / "kernels.txt").read_text()
    assert "us per update" in table and len(table.splitlines()) == 3 + 5
    assert sorted(p.name for p in (tmp_path / "prof").iterdir()) == ["hlo.tgz", "kernels.txt", "trace.json.gz"]
