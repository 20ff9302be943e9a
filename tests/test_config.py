"""The application's configuration: every group option composes, schemas follow the library's
constructors, bad values fail with a ConfigError naming the key, and the packaged conf/ is a copy."""

from __future__ import annotations

import dataclasses
import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jaxsgd import delays, lr, problems, variants
from jaxsgd.cli import check_sweep
from jaxsgd.config import CONF_DIR, build, options
from jaxsgd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = {"delay": delays.LAWS, "problem": problems.PROBLEMS, "lr": lr.RULES}


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def cfg(*overrides: str, hydra: bool = False):
    return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def test_groups_cover_the_library():
    opts = options()
    assert set(opts["variant"]) == set(variants.NAMES)
    for group, registry in REGISTRIES.items():
        assert set(opts[group]) == set(registry), group
    assert {"sgd", "momentum", "nesterov", "adam"} <= set(opts["optimizer"])


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in options().items() for o in opts])
def test_every_option_composes_and_builds(group, option):
    c = cfg(f"{group}={option}")
    if group == "variant":
        assert c.variant == option
    else:
        assert c[group].name == option
    if group in REGISTRIES:  # the option's keys are the constructor's parameters
        init = {f.name for f in dataclasses.fields(REGISTRIES[group][option]) if f.init}
        assert set(c[group]) - {"name"} == init
    if group == "problem" and option != "noisy_quadratic":
        return  # real-data problems load their data when built: their own tests cover that
    try:
        job = build(c)
    except ConfigError as exc:  # an option that needs a file (delay=trace) must say which key
        assert f"{group}.path" in str(exc)
        return
    built = {"variant": job.setting.name, "delay": job.delay.name, "problem": job.problem.name,
             "lr": job.lr.name, "optimizer": job.optimizer.name}
    assert built[group] == option


def test_defaults_build_into_library_objects():
    job = build(cfg())
    assert (job.setting.variant, job.setting.P, job.setting.K) == ("k_sync", 8, 2)
    assert isinstance(job.delay, delays.ShiftedExponential) and isinstance(job.problem, problems.NoisyQuadratic)
    assert isinstance(job.lr, lr.Constant) and job.optimizer.name == "sgd"
    assert job.runtime.precision == 32 and job.notes == ()


def test_parameters_and_lists_reach_the_library():
    job = build(cfg("delay=pareto", "delay.scale=2", "delay.shape=2.5", "lr=polynomial", "lr.eta=[0.05,0.1]",
                    "lr.a=[0.5,1]", "optimizer=adam", "+optimizer.kwargs.b1=0.8", "speeds=[1,1,1,1,2,2,2,2]"))
    assert job.delay == delays.Pareto(scale=2.0, shape=2.5)
    assert job.lr.grid_size == 4 and job.lr.eta == (0.05, 0.1)
    assert dict(job.optimizer.kwargs) == {"b1": 0.8}
    assert job.speeds == (1, 1, 1, 1, 2, 2, 2, 2)


@pytest.mark.parametrize("variant,K", [("sync", 8), ("async", 1)])
def test_aliases_fix_K(variant, K):
    job = build(cfg(f"variant={variant}", "K=3"))
    assert job.setting.K == K and job.setting.name == variant
    assert "K=3 applies to the k_* variants only" in job.notes[0]
    assert build(cfg(f"variant={variant}", "K=null")).notes == ()


def test_race_is_a_sweep_over_the_variants():
    c = cfg("+experiment=race", hydra=True)
    assert str(c.hydra.mode) == "RunMode.MULTIRUN"
    assert c.hydra.sweeper.params.variant.split(",") == ["sync", "k_sync", "k_batch_sync", "k_async", "k_batch_async", "async"]
    assert c.delay.name == "shifted_exponential" and c.problem.name == "noisy_quadratic" and c.P == 8
    assert c.hydra.callbacks.gather._target_ == "jaxsgd.sweep.GatherSweep"


@pytest.mark.parametrize(
    "override,key",
    [("delay=paretoo", "delay/paretoo"), ("delay.rat=2", "Key 'rat' not in"), ("P=eight", "full_key: P\n"),
     ("lr.etaa=0.1", "Key 'etaa' not in"), ("variant=ksync", "variant/ksync"),
     ("save_replicas=maybe", "full_key: save_replicas")],
)
def test_typos_and_types_fail_at_compose(override, key):
    with pytest.raises((HydraException, OmegaConfBaseException)) as info:
        cfg(override)
    text = str(info.value) + "\n" + str(info.value.__cause__ or "") + "\n"
    assert key in text, text


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["P=0"], "P=0 is invalid"),
        (["variant=k_sync", "K=9"], "K=9 is invalid for variant=k_sync: must be in 1..P (P=8)"),
        (["variant=k_async", "K=null"], "K is required for variant=k_async"),
        (["delay.rate=-1"], "delay.rate=-1.0 is invalid"),
        (["delay=trace", "delay.path=/no/such/trace.csv"], "delay.path='/no/such/trace.csv' is invalid: no such file"),
        (["lr.eta=-0.1"], "lr.eta"),
        (["lr.eta=[0.1,abc]"], "lr.eta"),
        (["precision=16"], "precision=16 is invalid: allowed: 32, 64"),
        (["updates=100", "record_every=7"], "record_every=7 is invalid: must divide updates=100"),
        (["speeds=fast"], "speeds='fast' is not known; allowed: homogeneous, linear, sqrt, two_tier"),
        (["speeds=[1,2]"], "speeds"),
        (["target_error=-1"], "target_error"),
        (["optimizer.name=adamm"], "optimizer.name='adamm' is not known"),
        (["+foo=1"], "foo: not a jaxsgd key"),
        (["devices=0"], "devices=0 is invalid"),
    ],
)
def test_bad_values_fail_in_build_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        build(cfg(*overrides))
    assert message in str(info.value)


def test_resolved_config_is_kept_for_the_summary():
    job = build(cfg("P=4", "K=2"))
    assert job.config["P"] == 4 and job.config["delay"]["name"] == "shifted_exponential"
    assert OmegaConf.create(job.config)  # plain containers


def test_packaged_conf_is_a_copy_of_conf():
    """The app reads conf/ in a checkout and jaxsgd/conf in an installed wheel: they must not drift.
    Fix: rm -rf jaxsgd/conf && cp -r conf jaxsgd/conf"""
    top, packaged = ROOT / "conf", ROOT / "jaxsgd" / "conf"
    files = sorted(p.relative_to(top) for p in top.rglob("*.yaml"))
    assert files == sorted(p.relative_to(packaged) for p in packaged.rglob("*.yaml"))
    assert all(filecmp.cmp(top / f, packaged / f, shallow=False) for f in files), "jaxsgd/conf differs from conf/"


def test_the_library_does_not_import_omegaconf():
    code = ("import sys, jaxsgd, jaxsgd.engine, jaxsgd.results, jaxsgd.theory, jaxsgd.app, jaxsgd.plot; "
            "sys.exit('omegaconf' in sys.modules or 'hydra' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


SWEEPS = {  # argv: None when every job builds, else (exit status, fragments of the message); the bad job comes
    # after a good one, which Hydra alone would run first
    ("--multirun", "P=8,2", "variant=k_async", "K=4"): (2, ["job 1 of the sweep (P=2)", "K=4 is invalid for variant=k_async",
                                                           "No job was run"]),
    ("+experiment=race", "K=9"): (2, ["job 1 of the sweep (variant=k_sync)", "K=9 is invalid for variant=k_sync"]),
    ("--multirun", "delay=exponential", "delay.rate=1,-1"): (2, ["job 1 of the sweep (delay.rate=-1)",
                                                               "delay.rate=-1.0 is invalid"]),
    ("--multirun", "variant=k_sync,k_async", "P=2,4", "K=3"): (2, ["job 0 of the sweep (variant=k_sync P=2)", "K=3 is invalid"]),
    ("--multirun", "P=4,abc"): (1, ["job 1 of the sweep (P=abc)", "could not be converted to Integer"]),
    ("--multirun", "lr.eta=[0.05,0.1]", "P=0"): (2, ["job 0 of the sweep: P=0 is invalid"]),  # one job, nothing swept
    ("--multirun", "variant=k_sync,k_async", "P=4,8", "K=2", "lr.eta=[0.05,0.1]"): None,
    ("+experiment=race",): None,
    ("P=0",): None,  # not a sweep: the job itself refuses it before any compute
}


@pytest.mark.parametrize("argv", list(SWEEPS), ids=" ".join)
def test_every_job_of_a_sweep_is_built_before_any_runs(argv):
    checked = check_sweep(argv)
    if SWEEPS[argv] is None:
        assert checked is None
        return
    status, fragments = SWEEPS[argv]
    assert checked is not None and checked[1] == status, checked
    for fragment in fragments:
        assert fragment in checked[0], checked[0]
