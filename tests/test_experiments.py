"""The paper's figures as experiments (experiments/, `make figures`): every experiment config composes, with
every value its sweep takes and with the paper and tiny scale overrides; every figure script draws its
figure and report section from gathered tables (synthetic ones with the documented columns, fast); and,
marked slow, every experiment runs at a tiny size through the application and is drawn from what it
gathered."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from jaxsgd import delays, theory
from jaxsgd.config import CONF_DIR, build

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import common as C  # noqa: E402
from experiments import make_figures as M  # noqa: E402

NAMES = list(M.EXPERIMENTS)


def test_every_figure_has_an_experiment_config_and_they_are_packaged():
    configs = {p.stem for p in (ROOT / "conf" / "experiment").glob("fig*.yaml")}
    assert configs == {e.config for e in M.EXPERIMENTS.values()}
    assert len(NAMES) >= 6
    for name in configs:  # the app reads jaxsgd/conf in an installed wheel
        assert (ROOT / "jaxsgd" / "conf" / "experiment" / f"{name}.yaml").read_text() == \
            (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()


# --------------------------------------------------------------------------------------------------
# composing


@pytest.fixture(scope="module")
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def _axes(hydra_cfg, sweeps: list[str]) -> dict[str, list[str]]:
    """{key: [override, ...]}: the values a multirun sweeps, the experiment's sweeper params with
    command-line sweeps winning."""
    params = {k: str(v) for k, v in (hydra_cfg.sweeper.params or {}).items()}
    params.update(o.split("=", 1) for o in sweeps)
    parser = OverridesParser.create()
    axes = {}
    for key, value in params.items():
        (ov,) = parser.parse_overrides([f"{key}={value}"])
        values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        axes[key] = [f"{key}={v}" for v in values]
    return axes


def _jobs(name: str, scale: str, every_value: bool) -> tuple[list[str], list[list[str]]]:
    """(plain overrides, jobs): with every_value, one job per value of each swept key (the others at their
    first value), else the first job only."""
    exp = M.EXPERIMENTS[name]
    extra = M.overrides(exp, scale)
    parser = OverridesParser.create()
    sweeps = [o for o in extra if parser.parse_overrides([o])[0].is_sweep_override()]
    plain = [f"+experiment={exp.config}", *[o for o in extra if o not in sweeps]]
    base = compose("config", overrides=plain, return_hydra_config=True)
    assert base.hydra.mode.name == "MULTIRUN"
    axes = _axes(base.hydra, sweeps)
    assert sum(len(v) for v in axes.values()) >= 2
    firsts = {k: v[0] for k, v in axes.items()}
    if not every_value:
        return plain, [list(firsts.values())]
    return plain, [list({**firsts, key: value}.values()) for key, values in axes.items() for value in values]


@pytest.mark.parametrize("name", NAMES)
def test_experiment_composes_and_builds_every_value_it_sweeps(hydra_conf, name):
    plain, jobs = _jobs(name, "default", every_value=True)
    for job in jobs:
        built = build(compose("config", overrides=[*plain, *job]))  # every value checked, library objects made
        assert built.updates % built.record_every == 0


@pytest.mark.parametrize("scale", ["paper", "tiny"])
@pytest.mark.parametrize("name", NAMES)
def test_scale_overrides_compose(hydra_conf, name, scale):
    plain, (job,) = _jobs(name, scale, every_value=False)
    built = build(compose("config", overrides=[*plain, *job]))
    default = build(compose("config", overrides=[f"+experiment={M.EXPERIMENTS[name].config}", *job]))
    if scale == "paper":
        assert built.replicas >= default.replicas and built.updates >= default.updates
    else:
        assert built.replicas * built.updates < default.replicas * default.updates


def test_the_lr_rules_of_figure_5_are_tuned_over_a_grid(hydra_conf):
    exp = M.EXPERIMENTS["fig5_lr_rules"]
    base = compose("config", overrides=[f"+experiment={exp.config}"], return_hydra_config=True)
    rules = set()
    for job in _axes(base.hydra, [])["+experiment/lr_rule"]:
        job_ = build(compose("config", overrides=[f"+experiment={exp.config}", job]))
        rules.add(job_.lr.name)
        assert job_.lr.grid_size >= 8 and job_.setting.name == "async"
    assert rules == {"constant", "compensating", "staleness_aware", "delay_adaptive", "polynomial", "threshold"}


# --------------------------------------------------------------------------------------------------
# drawing from synthetic gathered tables (the documented columns of sweep_*.parquet)

RNG = np.random.default_rng(0)
LAWS = {
    "exponential": {"delay.rate": 1.0},
    "shifted_exponential": {"delay.shift": 1.0, "delay.rate": 1.0},
    "hyperexponential": {"delay.probs": "[0.9, 0.1]", "delay.rates": "[2.0, 0.2]"},
}


def _keys(job: str, variant: str, P: int, K: int, delay: str = "shifted_exponential", **more) -> dict:
    return {"job": job, "variant": variant, "P": P, "K": K, "delay": delay, **LAWS[delay],
            "problem": "noisy_quadratic", "lr": "constant", "lr.eta": 0.1, "batch_size": 1, **more}


def _timing_curves(keys: dict, rate: float, updates: int = 2000, every: int = 20) -> pd.DataFrame:
    u = np.arange(0, updates + 1, every)
    steps = rate * every * (1 + 0.01 * RNG.standard_normal(len(u) - 1))
    t = np.concatenate([[0.0], np.cumsum(steps)])
    return pd.DataFrame({**{k: [v] * len(u) for k, v in keys.items()}, "update": u, "time_mean": t,
                         "error_mean": 1.0, "error_sem": 0.01, "error_q10": 0.9, "error_q90": 1.1, "error_theory": np.nan})


def _error_job(keys: dict, rate: float, floor: float, tau: float, updates: int = 3000, every: int = 10,
               start: float = 3.0, exact: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """curves, curves_time and a summary row of a job whose mean error decays exponentially in updates."""
    u = np.arange(0, updates + 1, every)
    err = floor + (start - floor) * np.exp(-u / tau)
    sem = 0.02 * err
    noisy = err + sem * RNG.standard_normal(len(u)) * (u > 0)
    front = {k: [v] * len(u) for k, v in keys.items()}
    curves = pd.DataFrame({**front, "update": u, "time_mean": u * rate, "error_mean": noisy, "error_sem": sem,
                           "error_q10": 0.7 * noisy, "error_q90": 1.3 * noisy, "error_theory": err if exact else np.nan})
    t = np.unique(np.concatenate([np.linspace(0, u[-1] * rate, len(u)), np.geomspace(every * rate, u[-1] * rate, len(u))]))
    e_t = floor + (start - floor) * np.exp(-(t / rate) / tau)
    curves_time = pd.DataFrame({**{k: [v] * len(t) for k, v in keys.items()}, "time": t, "error_mean": e_t,
                                "error_sem": 0.02 * e_t, "error_q10": 0.7 * e_t, "error_q90": 1.3 * e_t,
                                "error_theory": e_t if exact else np.nan})
    summary = {**keys, "final_error_mean": noisy[-1], "final_error_sem": sem[-1], "diverged_fraction": 0.0,
               "replicas": 100, "updates": updates, "record_every": every, "time_per_update": rate,
               "time_per_update_theory": rate, "staleness_mean": 0.0}
    return curves, curves_time, summary


def _write(root: Path, curves, curves_time, summary) -> None:
    root.mkdir(parents=True, exist_ok=True)
    pd.concat(curves, ignore_index=True).to_parquet(root / "sweep_curves.parquet")
    pd.concat(curves_time, ignore_index=True).to_parquet(root / "sweep_curves_time.parquet")
    pd.DataFrame(summary).to_parquet(root / "sweep_summary.parquet")


def _fig1(root: Path) -> None:
    curves, summary, P = [], [], 4
    for delay in LAWS:
        law = C.delay_law({"delay": delay, **LAWS[delay]})
        for v in C.VARIANTS:
            for K in range(1, P + 1):
                exact = theory.time_per_update(v, P, K, law)
                if exact is None:
                    kind, bound = theory.time_per_update_bound(v, P, K, law)
                    ordered = theory.time_per_update("k_sync", P, K, law)
                    exact = bound * (0.97 if kind == "upper" else 1.03) if K < P else ordered
                keys = _keys(f"{delay}{v}{K}", v, P, K, delay)
                curves.append(_timing_curves(keys, exact))
                summary.append({**keys, "replicas": 100, "updates": 2000})
    _write(root, curves, curves, summary)


def _fig2(root: Path) -> None:
    curves, summary = [], []
    for delay in ("exponential", "shifted_exponential"):
        law = C.delay_law({"delay": delay, **LAWS[delay]})
        for P in (2, 4, 8, 16):
            for v in ("sync", "async"):
                keys = _keys(f"{delay}{v}{P}", v, P, P if v == "sync" else 1, delay)
                curves.append(_timing_curves(keys, theory.time_per_update(v, P, None, law)))
                summary.append({**keys, "replicas": 100, "updates": 2000})
    _write(root, curves, curves, summary)


def _fig3(root: Path) -> None:
    jobs = [_error_job(_keys("0", "sync", 8, 8), 3.7, 0.02, 30, exact=True),
            _error_job(_keys("1", "async", 8, 1), 0.25, 0.25, 60)]
    _write(root, *[[j[i] for j in jobs] for i in range(3)])


def _tradeoff(root: Path, Ks=range(1, 9), **keys) -> None:
    jobs = []
    for v, speed in (("k_sync", 1.0), ("k_async", 0.8), ("k_batch_async", 0.6)):
        for K in Ks:
            jobs.append(_error_job(_keys(f"{v}{K}", v, max(Ks), K, **keys), 0.25 + speed * 3.5 * (K - 1) / 7,
                                   0.2 / K, 20 + 2 * K, updates=3000, every=20))
    _write(root, *[[j[i] for j in jobs] for i in range(3)])


def _fig5(root: Path) -> None:
    etas = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64]
    extra = {"compensating": ("lr.C", [0.001, 0.01, 1.0]), "polynomial": ("lr.a", [0.5, 1.0]), "threshold": ("lr.bound", [8, 16])}
    curves, curves_time, summary = [], [], []
    for i, rule in enumerate(["constant", "compensating", "staleness_aware", "delay_adaptive", "polynomial", "threshold"]):
        field, values = extra.get(rule, (None, [None]))
        for eta, x in itertools.product(etas, values):
            more = {"lr": rule, "lr.eta": eta, **({field: x} if field else {})}
            unstable = eta >= 0.32 and not (rule == "compensating" and x == 0.001)
            floor = 0.05 * (1 + (np.log2(eta / 0.04)) ** 2) * (1 + 0.05 * i)
            keys = _keys(str(i), "async", 16, 1, delay="exponential", **more)
            c, ct, s = _error_job(keys, 0.0625, floor, 40, updates=500, every=5)
            if unstable:
                s.update(final_error_mean=np.nan, diverged_fraction=0.5)
            curves.append(c)
            curves_time.append(ct)
            summary.append(s)
    _write(root, curves, curves_time, summary)


SYNTHETIC = {
    "fig1_runtime_vs_k": _fig1,
    "fig2_speedup": _fig2,
    "fig3_error_vs_time": _fig3,
    "fig4_tradeoff": _tradeoff,
    "fig5_lr_rules": _fig5,
    "fig6_real_data": lambda root: _tradeoff(root, Ks=(1, 2, 4, 8), problem="softmax_regression",
                                             **{"problem.dataset": "digits"}),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures")
    for name, make in SYNTHETIC.items():
        make(out / "data" / name)
    return out


@pytest.fixture(scope="module")
def drawn(synthetic) -> dict[str, C.Section]:
    """Every figure drawn once from the synthetic tables, and the report written from them."""
    sections = M.draw_all(NAMES, synthetic)
    M.report(sections, synthetic, missing=[])
    return {s.name: s for s in sections}


def test_the_synthetic_tables_cover_every_figure():
    assert set(SYNTHETIC) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_figure_draws_from_gathered_tables(synthetic, drawn, name):
    section = drawn[name]
    assert section.image == synthetic / f"{name}.png"
    assert section.image.read_bytes()[:4] == b"\x89PNG"
    assert section.checks  # their verdicts: test_verdicts_follow_the_numbers
    assert len(section.text) >= 2 and all(isinstance(t, str) and t for t in section.text)
    for _, table in section.tables:
        assert len(table) > 0 and "|" in C.markdown_table(table)


def test_verdicts_follow_the_numbers(drawn):
    """The synthetic tables are built to agree with the theory and the paper's claims: every check says so."""
    for name in ("fig1_runtime_vs_k", "fig2_speedup", "fig3_error_vs_time", "fig4_tradeoff", "fig6_real_data"):
        checks = drawn[name].checks
        assert all(c.passed for c in checks), [(c.claim, c.detail) for c in checks if not c.passed]
    fig5 = {c.claim: c for c in drawn["fig5_lr_rules"].checks}
    assert any("unstable" in claim and c.passed for claim, c in fig5.items())


def test_a_wrong_simulation_is_reported_as_disagreeing(tmp_path):
    root = tmp_path / "data" / "fig2_speedup"
    _fig2(root)
    curves = pd.read_parquet(root / "sweep_curves.parquet")
    curves.loc[curves["variant"] == "sync", "time_mean"] *= 1.1  # sync 10% slower than theory
    curves.to_parquet(root / "sweep_curves.parquet")
    section = M.EXPERIMENTS["fig2_speedup"].draw(C.load(root), tmp_path)
    assert not section.checks[0].passed and section.checks[0].verdict == "disagrees"
    assert "disagree" in " ".join(section.text)


def test_the_report_holds_every_figure_and_check(synthetic, drawn):
    report = (synthetic / "REPORT.md").read_text()
    for name, section in drawn.items():
        assert f"![{name}]({name}.png)" in report
        for check in section.checks:
            assert C.cell(check.detail) in report
    assert "## Claims checked" in report and "**agrees**" in report
    assert "E[T] simulated vs theory" in report and "Speed-up simulated vs theory" in report


def test_draw_only_without_tables_fails(tmp_path, capsys):
    assert M.main(["--draw-only", "--out", str(tmp_path)]) == 1
    assert "run without --draw-only" in capsys.readouterr().err


def test_steady_state_rate_and_its_error():
    u = np.arange(0, 10001, 10)
    t = 0.5 * u + 3.0 * (u > 0)  # a start-up transient of 3 time units, then 0.5 per update
    rate, se = C.steady_time_per_update(u, t)
    assert rate == pytest.approx(0.5) and se == pytest.approx(0.0, abs=1e-12)
    noisy = np.concatenate([[0], np.cumsum(0.5 * 10 * (1 + 0.1 * RNG.standard_normal(1000)))])
    rate, se = C.steady_time_per_update(u, noisy)
    assert abs(rate - 0.5) < 5 * se and 0 < se < 0.01


def test_delay_law_from_a_table_row():
    law = C.delay_law({"delay": "hyperexponential", "delay.probs": "[0.9, 0.1]", "delay.rates": "[2.0, 0.2]",
                       "delay.rate": np.nan})
    assert law == delays.Hyperexponential(probs=(0.9, 0.1), rates=(2.0, 0.2))


# --------------------------------------------------------------------------------------------------
# end to end, tiny (slow: every experiment through the application, about 3 minutes on 2 cores)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    cache = f"compilation_cache={out / 'xla'}"
    for exp in M.EXPERIMENTS.values():
        M.run_experiment(exp, out / "data", "tiny", extra=[cache], echo=lambda *a, **k: None)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_experiment_runs_tiny_and_draws(tiny_runs, name):
    t = C.load(tiny_runs / "data" / name)
    assert t.run["scale"] == "tiny" and t.run["jobs"] == t.summary["job"].nunique() >= 2
    for col in ("job", "variant", "P", "K", "delay", "time_per_update", "final_error_mean", "final_error_sem",
                "diverged_fraction", "replicas", "updates", "lr", "lr.eta"):
        assert col in t.summary, col
    for col in ("job", "update", "time_mean", "error_mean", "error_sem", "error_q10", "error_q90", "error_theory"):
        assert col in t.curves, col
    for col in ("job", "time", "error_mean", "error_sem", "error_theory"):
        assert col in t.curves_time, col
    section = M.EXPERIMENTS[name].draw(t, tiny_runs)
    assert section.image.is_file() and section.checks


@pytest.mark.slow
def test_tiny_report(tiny_runs):
    assert M.main(["--draw-only", "--out", str(tiny_runs)]) == 0
    assert (tiny_runs / "REPORT.md").read_text().count("![") == len(NAMES)
