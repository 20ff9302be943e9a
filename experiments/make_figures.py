"""Reproduce the figures of Dutta et al. (AISTATS 2018) with jaxsgd: `make figures`.

Each figure is one Hydra experiment (conf/experiment/<name>.yaml), run as a multirun of the application,

    python -m jaxsgd +experiment=<name> hydra.sweep.dir=figures/data/<name> [scale overrides]

whose GatherSweep callback gathers the jobs into sweep_summary.parquet, sweep_curves.parquet and
sweep_curves_time.parquet at the sweep root. The figure scripts (experiments/fig*.py) only read those
tables (and jaxsgd.theory): they never simulate. This script runs the experiments, then draws
figures/<name>.png and writes figures/REPORT.md, whose verdicts are computed from the numbers.

    python experiments/make_figures.py                  # every experiment at the default size, then draw
    python experiments/make_figures.py --scale paper    # paper-size runs (a GPU)
    python experiments/make_figures.py --only fig3_error_vs_time --only fig5_lr_rules
    python experiments/make_figures.py --draw-only      # redraw figures and report from the tables on disk
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import common as C  # noqa: E402
from experiments import (  # noqa: E402
    fig1_runtime_vs_k,
    fig2_speedup,
    fig3_error_vs_time,
    fig4_tradeoff,
    fig5_lr_rules,
    fig6_real_data,
)

#: the figures, in report order
EXPERIMENTS: dict[str, C.Experiment] = {
    m.EXPERIMENT.name: m.EXPERIMENT
    for m in (fig1_runtime_vs_k, fig2_speedup, fig3_error_vs_time, fig4_tradeoff, fig5_lr_rules, fig6_real_data)
}
SCALES = ("default", "paper", "tiny")


def overrides(exp: C.Experiment, scale: str) -> list[str]:
    """The command-line overrides a scale adds to the experiment config (default: none)."""
    return list({"default": (), "paper": exp.paper, "tiny": exp.tiny}[scale])


def command(exp: C.Experiment, root: Path, scale: str, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "jaxsgd", f"+experiment={exp.config}", f"hydra.sweep.dir={root}",
            "progress=false", *overrides(exp, scale), *extra]


def run_experiment(exp: C.Experiment, data: Path, scale: str, extra: list[str] = (), echo=print,
                   progress: bool = False) -> dict:
    """Run one experiment's multirun into data/<name> (replacing what was there); returns its RUN.json.
    Raises RuntimeError with the log's tail when the run fails."""
    root = data / exp.name
    if root.exists():
        shutil.rmtree(root)  # stale jobs would be gathered with the new ones
    root.mkdir(parents=True)
    cmd = command(exp, root, scale, list(extra))
    log_path = data / f"{exp.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    t0 = time.perf_counter()
    jobs = 0
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=C.ROOT, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if "jaxsgd.app" in line and "E[T]" in line:
                jobs += 1
                if progress:
                    echo(f"  [{exp.name}] job {jobs} done ({time.perf_counter() - t0:.0f}s)", end="\r")
        rc = proc.wait()
    seconds = time.perf_counter() - t0
    if progress:
        echo(" " * 60, end="\r")
    if rc != 0 or not C.has_tables(root):
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{exp.name}: the experiment failed (exit status {rc}); log {log_path}:\n{tail}")
    jobs = len(C.load(root).summary["job"].unique())  # the finished jobs gathered (not the log lines)
    run = {"name": exp.name, "config": exp.config, "scale": scale, "command": cmd[1:], "seconds": seconds,
           "jobs": jobs, "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    (root / "RUN.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


def draw_all(names: list[str], out: Path) -> list[C.Section]:
    sections = []
    for name in names:
        tables = C.load(out / "data" / name)
        sections.append(EXPERIMENTS[name].draw(tables, out))
    return sections


def report(sections: list[C.Section], out: Path, missing: list[str], total_seconds: float | None = None) -> Path:
    """figures/REPORT.md: a summary of the checks, then per figure the image, text, checks and tables."""
    import jax

    from jaxsgd import __version__

    runs = {s.name: C.load(out / "data" / s.name).run for s in sections}
    scales = sorted({r.get("scale", "?") for r in runs.values()})
    run_total = sum(r.get("seconds", 0.0) for r in runs.values())
    checks = [(s, c) for s in sections for c in s.checks]
    lines = [
        "# Reproducing Dutta et al. (AISTATS 2018) with jaxsgd",
        "",
        "*Slow and Stale Gradients Can Win the Race: Error-Runtime Trade-offs in Distributed SGD.* Generated by "
        "`make figures` (experiments/make_figures.py) from the gathered sweep tables under `figures/data/`; every "
        "verdict below is computed from the numbers, none is written by hand: a simulated value agrees with theory "
        f"when |z| = |simulated - theory| / SE is at most {C.Z_AGREE:g} (raised to the Bonferroni bound for a "
        f"{C.FAMILY:.0%} family-wise false-alarm rate where a figure makes many comparisons; a bound is respected when the "
        f"simulation is on its side within that margin), and a difference between two simulations counts when it "
        f"exceeds {C.Z_DIFFER:g} standard errors. Standard errors of E[T] are batch means over the recorded update "
        "times after a 25% warm-up; those of errors are over replicas.",
        "",
        f"- scale: {', '.join(scales)}; jaxsgd {__version__}, JAX {jax.__version__}",
        f"- simulation wall time: {run_total:.0f} s over {len(runs)} experiment(s)"
        + (f"; this invocation of make_figures took {total_seconds:.0f} s in all" if total_seconds is not None else ""),
        f"- {C.summarize_checks(c for _, c in checks)}",
    ]
    if missing:
        lines.append(f"- not drawn (no tables yet; run `python experiments/make_figures.py --only NAME`): {', '.join(missing)}")
    lines += ["", "## Claims checked", "", "| figure | claim | verdict | numbers |", "|---|---|---|---|"]
    for s, c in checks:
        lines.append(f"| {s.name} | {C.cell(c.claim)} | **{c.verdict}** | {C.cell(c.detail)} |")
    for s in sections:
        run = runs[s.name]
        lines += ["", f"## {s.title}", "", f"![{s.name}]({s.image.relative_to(out).as_posix()})", ""]
        lines += [*s.text, ""]
        if run:
            lines.append(f"*Experiment `+experiment={run.get('config')}` at scale {run.get('scale')}: {run.get('jobs')} jobs "
                         f"in {run.get('seconds', 0):.0f} s. Tables: `figures/data/{s.name}/`.*")
        for title, df in s.tables:
            lines += ["", f"**{title}**", "", C.markdown_table(df)]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="default",
                        help="default: all six in minutes on a CPU; paper: paper-size runs for a GPU; tiny: a smoke test")
    parser.add_argument("--only", action="append", choices=list(EXPERIMENTS), metavar="NAME",
                        help=f"run just this experiment (repeatable): {', '.join(EXPERIMENTS)}; drawing and the report "
                             "still cover every experiment whose tables exist")
    parser.add_argument("--draw-only", action="store_true", help="do not run: redraw from the tables under OUT/data")
    parser.add_argument("--out", type=Path, default=C.ROOT / "figures", help="output directory (default: figures/)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    selected = args.only or list(EXPERIMENTS)
    if not args.draw_only:
        for name in selected:
            exp = EXPERIMENTS[name]
            print(f"running {name} (scale {args.scale}): python -m jaxsgd +experiment={exp.config} ...", flush=True)
            try:
                run = run_experiment(exp, data, args.scale, echo=lambda *a, **k: print(*a, **k, flush=True),
                                     progress=sys.stdout.isatty())
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"  {name}: {run['jobs']} jobs in {run['seconds']:.0f}s -> {data / name}", flush=True)
    available = [n for n in EXPERIMENTS if C.has_tables(data / n)]
    missing = [n for n in EXPERIMENTS if n not in available]
    if args.draw_only and not available:
        print(f"no gathered tables under {data}: run without --draw-only first", file=sys.stderr)
        return 1
    sections = draw_all(available, out)
    for s in sections:
        print(f"figure: {s.image}  ({sum(c.passed is True for c in s.checks)}/{len(s.checks)} checks agree)")
    path = report(sections, out, missing, None if args.draw_only else time.perf_counter() - t0)
    print(f"report: {path}  ({time.perf_counter() - t0:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
