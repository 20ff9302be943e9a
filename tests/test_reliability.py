# ruff: noqa: E501  (the tables of bad inputs read best one case per line)
"""Reliability (issue 6): every bad input is refused before compute with a message naming the key, the
value and what is allowed; divergence is counted, reported and left out of the aggregates; result files
are written atomically with summary.json last, and `resume=true` skips finished jobs; the same config
and seed give bit-identical tables; precision=64 agrees with float32.

Most checks go through the in-process API (config.build, app.run), which is what the command line runs;
subprocesses only where the exit status, the absence of a traceback or a killed process matter.

Covered elsewhere, not repeated here: a replica's records do not depend on the chunk size or the number
of devices (tests/test_engine.py: test_replica_independent_of_chunk_size, ..._of_device_count), nor
the timeline's (tests/test_timeline.py); library-level validation of each constructor
(test_delays.py, test_lr.py, test_problems.py, test_timeline.py); the timeline invariants under random
P, K, laws and parameters (test_properties.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import jaxsgd
from jaxsgd import app, delays, lr, outputs, problems
from jaxsgd.cli import preflight
from jaxsgd.config import CONF_DIR, MAX_SEED, build
from jaxsgd.errors import ConfigError
from jaxsgd.sweep import gather, render_table

ROOT = Path(__file__).resolve().parents[1]
#: One small job whose compiled code the in-process tests share (changing the seed or the learning rates
#: does not recompile): on the NQM with k_sync, eta 0.5 is stable and 2.1 blows up a fraction of the
#: replicas within 456 updates (|1 - eta h| > 1 for the stiffest coordinates).
COMMON = ["variant=k_sync", "P=3", "K=1", "delay=exponential", "problem.dim=4", "problem.h_min=0.1", "lr.eta=[0.5,2.1]",
          "updates=456", "record_every=4", "replicas=40", "seed=5", "progress=false", "figure=false",
          "compilation_cache=null"]
TIMING = ("compile_seconds", "run_seconds", "trajectory_updates_per_second", "output_dir")


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def cfg(*overrides: str):
    return compose("config", overrides=list(overrides))


def run_job(out: Path, *overrides: str) -> tuple[app.Job, dict]:
    job = build(cfg(*COMMON, *overrides))
    return job, app.run(job, out, {"overrides": list(overrides)})


# ================================================================================ validation

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad (and one good) trace and .npz files."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("seconds\n")
    (d / "nan.csv").write_text("1.0\nnan\n2.0\n")
    (d / "negative.csv").write_text("1.0\n-0.5\n")
    (d / "zero.csv").write_text("1.0\n0\n")
    (d / "text.csv").write_text("1.0\n2.0\nfast\n")
    np.save(d / "empty.npy", np.array([]))
    np.save(d / "negative.npy", np.array([1.0, -1.0]))
    np.save(d / "inf.npy", np.array([1.0, np.inf]))
    np.save(d / "table.npy", np.ones((4, 10)))  # per-worker columns: not a trace
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    np.savez(d / "no_keys.npz")
    np.savez(d / "wrong_keys.npz", features=X, labels=y)
    np.savez(d / "X_1d.npz", X=X[:, 0], y=y)
    np.savez(d / "y_short.npz", X=X, y=y[:-1])
    np.savez(d / "nan.npz", X=np.where(np.eye(20, 3) > 0, np.nan, X), y=y)
    np.savez(d / "negative_labels.npz", X=X, y=y - 1)
    np.savez(d / "test_without_y.npz", X=X, y=y, X_test=X)
    np.savez(d / "test_features.npz", X=X, y=y, X_test=X[:, :2], y_test=y)
    (d / "not_npz.npz").write_bytes(b"")
    return d


BAD_VALUES = {  # case: (overrides, fragments of the message); {d} is the directory of `files`
    # variant, P, K
    "P=0": (["P=0"], ["P=0 is invalid", "integer >= 1"]),
    "P<0": (["P=-3"], ["P=-3 is invalid"]),
    "K=0": (["variant=k_batch_sync", "K=0"], ["K=0 is invalid", "integer >= 1"]),
    "K>P k_sync": (["variant=k_sync", "K=9"], ["K=9 is invalid for variant=k_sync: must be in 1..P (P=8)"]),
    "K>P k_async": (["variant=k_async", "K=9"], ["K=9 is invalid for variant=k_async: must be in 1..P (P=8)"]),
    "K missing": (["variant=k_async", "K=null"], ["K is required for variant=k_async"]),
    # rates, scales, shapes
    "rate 0": (["delay=exponential", "delay.rate=0"], ["delay.rate=0.0 is invalid: must be a finite number > 0"]),
    "rate<0": (["delay.rate=-1"], ["delay.rate=-1.0 is invalid"]),
    "rate nan": (["delay.rate=nan"], ["delay.rate=nan is invalid: must be a finite number > 0"]),
    "rate inf": (["delay.rate=inf"], ["delay.rate=inf is invalid"]),
    "shift<0": (["delay.shift=-1"], ["delay.shift=-1.0 is invalid: must be a finite number >= 0"]),
    "pareto scale": (["delay=pareto", "delay.scale=0"], ["delay.scale=0.0 is invalid"]),
    "pareto shape": (["delay=pareto", "delay.shape=-2"], ["delay.shape=-2.0 is invalid"]),
    "weibull shape": (["delay=weibull", "delay.shape=0"], ["delay.shape=0.0 is invalid"]),
    "gamma scale": (["delay=gamma", "delay.scale=0"], ["delay.scale=0.0 is invalid"]),
    "lognormal sigma": (["delay=lognormal", "delay.sigma=0"], ["delay.sigma=0.0 is invalid"]),
    "uniform high<low": (["delay=uniform", "delay.low=2", "delay.high=1"], ["delay.high=1.0 is invalid: must be finite and > delay.low=2.0"]),
    "constant 0": (["delay=constant", "delay.value=0"], ["delay.value=0.0 is invalid"]),
    # probability vectors
    "probs sum": (["delay=hyperexponential", "delay.probs=[0.5,0.6]", "delay.rates=[1,2]"], ["delay.probs=(0.5, 0.6) is invalid: must sum to 1"]),
    "probs negative": (["delay=hyperexponential", "delay.probs=[1.5,-0.5]", "delay.rates=[1,2]"], ["delay.probs", "must all be >= 0"]),
    "probs length": (["delay=hyperexponential", "delay.probs=[0.5,0.5]", "delay.rates=[1]"], ["delay.rates=(1.0,) is invalid: must have the same length as delay.probs (2)"]),
    "probs empty": (["delay=hyperexponential", "delay.probs=[]", "delay.rates=[]"], ["delay.probs=() is invalid: must hold at least one probability"]),
    "rates 0": (["delay=hyperexponential", "delay.probs=[0.5,0.5]", "delay.rates=[1,0]"], ["delay.rates=0.0 is invalid"]),
    # counts
    "replicas 0": (["replicas=0"], ["replicas=0 is invalid: must be an integer >= 1"]),
    "updates 0": (["updates=0"], ["updates=0 is invalid: must be an integer >= 1"]),
    "record_every 0": (["record_every=0"], ["record_every=0 is invalid: must be an integer >= 1"]),
    "record_every divides": (["updates=100", "record_every=7"], ["record_every=7 is invalid: must divide updates=100"]),
    "batch_size 0": (["batch_size=0"], ["batch_size=0 is invalid: must be an integer >= 1"]),
    "seed<0": (["seed=-1"], ["seed=-1 is invalid: must be an integer >= 0"]),
    "seed too big": ([f"seed={MAX_SEED + 1}"], [f"seed={MAX_SEED + 1} is invalid: must be an integer in 0..{MAX_SEED}"]),
    "chunk 0": (["chunk=0"], ["chunk=0 is invalid"]),
    "devices 0": (["devices=0"], ["devices=0 is invalid"]),
    "precision": (["precision=16"], ["precision=16 is invalid: allowed: 32, 64"]),
    "target_error": (["target_error=0"], ["target_error=0.0 is invalid: must be a finite number > 0"]),
    "speeds length": (["speeds=[1,2]"], ["speeds", "must have P=8 entries"]),
    "speeds 0": (["P=2", "K=1", "speeds=[1,0]"], ["speeds", "every speed factor must be finite and > 0"]),
    "speeds name": (["speeds=sqr"], ["speeds='sqr' is not known", "Did you mean 'sqrt'"]),
    "records memory": (["replicas=100000", "updates=100000000", "record_every=1"], ["GiB of memory", "raise record_every or lower replicas"]),
    # learning-rate parameters
    "eta 0": (["lr.eta=0"], ["lr.eta=(0.0,) is invalid: must be > 0"]),
    "eta<0": (["lr.eta=[0.1,-0.1]"], ["lr.eta=(0.1, -0.1) is invalid: must be > 0"]),
    "eta nan": (["lr.eta=nan"], ["lr.eta=nan is invalid: every value must be finite"]),
    "eta empty": (["lr.eta=[]"], ["lr.eta=[] is invalid: must hold at least one value"]),
    "eta text": (["lr.eta=[0.1,abc]"], ["lr.eta", "must be a number or a list of numbers"]),
    "polynomial a": (["lr=polynomial", "lr.a=-1"], ["lr.a=(-1.0,) is invalid: must be >= 0"]),
    "threshold bound": (["lr=threshold", "lr.bound=-1"], ["lr.bound=(-1,) is invalid"]),
    "threshold integer": (["lr=threshold", "lr.bound=1.5"], ["lr.bound=1.5 is invalid: every value must be an integer"]),
    "compensating C": (["lr=compensating", "lr.C=0"], ["lr.C=(0.0,) is invalid: must be > 0"]),
    "schedule name": (["lr.schedule=cosine"], ["lr.schedule='cosine' is not known", "cosine_decay_schedule"]),
    "schedule kwargs missing": (["lr.schedule=cosine_decay_schedule"], ["lr.schedule_kwargs={} do not fit optax.cosine_decay_schedule",
                                                                       "decay_steps"]),
    "schedule kwargs value": (["lr.schedule=cosine_decay_schedule", "+lr.schedule_kwargs.decay_steps=-5"],
                              ["lr.schedule_kwargs={'decay_steps': -5}", "do not fit", "positive decay_steps"]),
    "optimizer name": (["optimizer.name=adamm"], ["optimizer.name='adamm' is not known", "Did you mean 'adam'"]),
    "optimizer kwargs": (["+optimizer.kwargs.moment=0.9"], ["optimizer.kwargs={'moment': 0.9} do not fit optax.sgd"]),
    "optimizer kwargs type": (["optimizer=adam", "+optimizer.kwargs.b1=abc"],
                              ["optimizer.kwargs.b1='abc' is invalid: must be a number (optax.adam's default: 0.9)"]),
    "optimizer kwargs bool": (["optimizer=sgd", "+optimizer.kwargs.nesterov=1"],
                              ["optimizer.kwargs.nesterov=1 is invalid: must be true or false"]),
    "schedule kwargs alone": (["+lr.schedule_kwargs.decay_steps=10"],
                              ["lr.schedule_kwargs={'decay_steps': 10} is invalid: it needs lr.schedule"]),
    # problem
    "dim 0": (["problem.dim=0"], ["problem.dim=0 is invalid"]),
    "sigma2<0": (["problem.sigma2=-1"], ["problem.sigma2=-1.0 is invalid"]),
    "h_min>h_max": (["problem.h_min=2"], ["problem.h_min=2.0 is invalid: must be <= problem.h_max=1.0"]),
    "init nan": (["problem.init=nan"], ["problem.init=nan is invalid: must be a finite number"]),
    # trace files
    "trace unset": (["delay=trace"], ["delay.path is empty"]),
    "trace missing": (["delay=trace", "delay.path={d}/none.csv"], ["delay.path='{d}/none.csv' is invalid: no such file"]),
    "trace directory": (["delay=trace", "delay.path={d}"], ["delay.path='{d}' is invalid: no such file"]),
    "trace empty": (["delay=trace", "delay.path={d}/empty.csv"], ["delay.path='{d}/empty.csv' is invalid: the file holds no values"]),
    "trace header only": (["delay=trace", "delay.path={d}/header_only.csv"], ["the file holds no values"]),
    "trace NaN": (["delay=trace", "delay.path={d}/nan.csv"], ["delay.path='{d}/nan.csv' is invalid: every value must be finite"]),
    "trace negative": (["delay=trace", "delay.path={d}/negative.csv"], ["delay.path='{d}/negative.csv' is invalid: every compute time must be > 0"]),
    "trace zero": (["delay=trace", "delay.path={d}/zero.csv"], ["every compute time must be > 0"]),
    "trace text": (["delay=trace", "delay.path={d}/text.csv"], ["delay.path='{d}/text.csv' is invalid: line 3 is not a number ('fast')"]),
    "trace empty npy": (["delay=trace", "delay.path={d}/empty.npy"], ["delay.path='{d}/empty.npy' is invalid: the file holds no values"]),
    "trace negative npy": (["delay=trace", "delay.path={d}/negative.npy"], ["every compute time must be > 0"]),
    "trace inf npy": (["delay=trace", "delay.path={d}/inf.npy"], ["every value must be finite"]),
    "trace 2-D npy": (["delay=trace", "delay.path={d}/table.npy"], ["delay.path='{d}/table.npy' is invalid: it holds an array of shape (4, 10)"]),
    # .npz files
    "npz unset": (["problem=npz"], ["problem.path is required"]),
    "npz missing": (["problem=npz", "problem.path={d}/none.npz"], ["problem.path='{d}/none.npz' is invalid: no such file"]),
    "npz not npz": (["problem=npz", "problem.path={d}/not_npz.npz"], ["problem.path='{d}/not_npz.npz' is invalid: cannot be read"]),
    "npz no keys": (["problem=npz", "problem.path={d}/no_keys.npz"], ["missing key(s) ['X', 'y']; it has []"]),
    "npz wrong keys": (["problem=npz", "problem.path={d}/wrong_keys.npz"], ["missing key(s) ['X', 'y']; it has ['features', 'labels']"]),
    "npz X 1-D": (["problem=npz", "problem.path={d}/X_1d.npz"], ["X has shape (20,); it must be (n, d)"]),
    "npz y length": (["problem=npz", "problem.path={d}/y_short.npz"], ["y has shape (19,); it must be (20,) to match X"]),
    "npz NaN": (["problem=npz", "problem.path={d}/nan.npz"], ["X contains NaN or infinite values"]),
    "npz negative labels": (["problem=npz", "problem.path={d}/negative_labels.npz"], ["task='logistic' needs labels y in {0, 1}"]),
    "npz X_test alone": (["problem=npz", "problem.path={d}/test_without_y.npz"], ["X_test and y_test must be given together"]),
    "npz test features": (["problem=npz", "problem.path={d}/test_features.npz"], ["X_test has 2 features but X has 3"]),
    # unknown keys added with +
    "unknown key": (["+replica=10"], ["replica: not a jaxsgd key", "Did you mean 'replicas'"]),
    "unknown parameter": (["+delay.rat=2"], ["delay.rat: delay=shifted_exponential has no parameter 'rat'", "Did you mean 'rate'"]),
    "unknown lr parameter": (["+lr.etaa=0.1"], ["lr.etaa: lr=constant has no parameter 'etaa'", "Did you mean 'eta'"]),
}


#: The default run checks these (at least one of each kind; composing a config costs ~0.1 s); -m slow checks all.
FAST_VALUES = {"K>P k_async", "K missing", "rate nan", "pareto shape", "probs sum", "probs negative", "replicas 0",
               "updates 0", "record_every 0", "batch_size 0", "seed too big", "records memory", "eta 0",
               "threshold integer", "schedule kwargs value", "optimizer kwargs type", "schedule kwargs alone", "trace empty", "trace NaN", "trace negative", "trace text",
               "trace 2-D npy", "npz wrong keys", "npz X 1-D", "npz NaN", "npz not npz", "unknown key", "unknown parameter"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c in FAST_VALUES else pytest.mark.slow) for c in BAD_VALUES])
def test_bad_values_are_refused_before_compute(case, files):
    overrides, fragments = BAD_VALUES[case]
    with pytest.raises(ConfigError) as info:
        build(cfg(*[o.replace("{d}", str(files)) for o in overrides]))
    message = str(info.value)
    for fragment in fragments:
        assert fragment.replace("{d}", str(files)) in message, message
    assert "\n" not in message  # one line


API_BAD = {  # case: (call, fragments of the message): the library's own checks, without the config
    "bool rate": (lambda: delays.Exponential(True), ["delay.rate=True is invalid: must be a positive number"]),
    "bool eta": (lambda: lr.Constant(eta=True), ["lr.eta=True is invalid: must be a number"]),
    "timeline seed too big": (lambda: timeline_of(seed=2**32), ["seed=4294967296 is invalid: must be an integer in 0..2147483647"]),
    "timeline seed float": (lambda: timeline_of(seed=1.5), ["seed=1.5 is invalid"]),
    "simulate seed bool": (lambda: simulate_of(seed=True), ["seed=True is invalid"]),
    "no devices": (lambda: simulate_of(devices=[]), ["devices=[] is invalid: must hold at least one device"]),
    "optimizer names": (lambda: lr.Optimizer("nosuchopt"), ["optimizer.name='nosuchopt' is not known; allowed: adabelief,"]),
}


def timeline_of(**kw):
    return jaxsgd.timeline("k_async", 4, 2, delays.Exponential(1.0), updates=5, **kw)


def simulate_of(**kw):
    return jaxsgd.simulate(problems.NoisyQuadratic(dim=4), "k_async", 4, 2, delays.Exponential(1.0), updates=10, replicas=2, **kw)


@pytest.mark.parametrize("case", list(API_BAD))
def test_library_refuses_bad_arguments(case):
    call, fragments = API_BAD[case]
    with pytest.raises(ConfigError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_good_trace_and_npz_files_build(files):
    (files / "ok.csv").write_text("seconds\n1.0\n2.5\n")
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    np.savez(files / "ok.npz", X=X, y=y)
    job = build(cfg("delay=trace", f"delay.path={files}/ok.csv", "problem=npz", f"problem.path={files}/ok.npz"))
    assert job.delay.mean == pytest.approx(1.75) and job.problem.dim == 4  # 3 features + bias


UNKNOWN = {  # command line: what the message says (Hydra's own lists the options but suggests nothing)
    ("delay=exponentail",): ["delay='exponentail' is not known; allowed: constant, exponential", "Did you mean 'exponential'"],
    ("variant=ksync",): ["variant='ksync' is not known", "Did you mean 'k_sync'"],
    ("--multirun", "variant=k_sync,k_asyn"): ["variant='k_asyn' is not known", "Did you mean 'k_async'"],
    ("lr=polynomal",): ["lr='polynomal' is not known", "Did you mean 'polynomial'"],
    ("problem=noisy_quadratik",): ["problem='noisy_quadratik' is not known", "Did you mean 'noisy_quadratic'"],
    ("optimizer=adamm",): ["optimizer='adamm' is not known", "Did you mean 'adam'", "optimizer.name=NAME"],
    ("+experiment=rac",): ["experiment='rac' is not known; allowed: ", "Did you mean 'race'"],
    ("delay.rat=2",): ["delay.rat: delay=shifted_exponential has no parameter 'rat'; its parameters are rate, shift", "Did you mean 'rate'"],
    ("delay=pareto", "delay.shap=2"): ["delay.shap: delay=pareto has no parameter 'shap'", "Did you mean 'shape'"],
    ("replica=10",): ["replica: not a jaxsgd key", "Did you mean 'replicas'"],
    ("lr=polynomial", "lr.aa=1"): ["lr.aa: lr=polynomial has no parameter 'aa'", "Did you mean 'a'"],
    ("+experiment/lr_rule=constnt",): ["experiment/lr_rule='constnt' is not known", "Did you mean 'constant'"],
}
KNOWN = [("+experiment=race",), ("delay=pareto", "delay.shape=2.5"), ("+optimizer.kwargs.b1=0.9", "optimizer=adam"),
         ("hydra/launcher=basic", "hydra.job.chdir=false"), ("--multirun", "delay=glob(*)"), ("resume=true", "lr.eta=[0.1,0.2]"),
         ("--help",), ("+experiment/lr_rule=compensating", "lr.C=0.2"), ("P=eight",)]  # the last: a type error, which Hydra reports itself


@pytest.mark.parametrize("argv", list(UNKNOWN), ids=" ".join)
def test_unknown_options_and_keys_get_close_suggestions(argv):
    message = preflight(argv)
    assert message is not None
    for fragment in UNKNOWN[argv]:
        assert fragment in message, message


@pytest.mark.parametrize("argv", KNOWN, ids=" ".join)
def test_known_options_pass_preflight(argv):
    assert preflight(argv) is None


# ---------------------------------------------------------------------------- the command line

def _command(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "jaxsgd", *args, f"compilation_cache={cache}"]


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xla_cache")


CLI = {  # case: (arguments, exit status, fragments of stderr); {d} is the directory of `files`
    # one of each path: preflight (before Hydra), the config build, Hydra's own check (a missing data file at
    # the command line: tests/test_app.py)
    "unknown option": (["delay=exponentail"], 2, ["jaxsgd: delay='exponentail' is not known", "Did you mean 'exponential'"]),
    "seed range": (["seed=3000000000"], 2, ["seed=3000000000 is invalid: must be an integer in 0..2147483647"]),
    "type (Hydra)": (["P=eight"], 1, ["Value 'eight' of type 'str' could not be converted to Integer", "full_key: P"]),
    # slow: more of the same paths (each process costs a few seconds of JAX start-up)
    "trace NaN": (["delay=trace", "delay.path={d}/nan.csv"], 2, ["delay.path='{d}/nan.csv' is invalid: every value must be finite"]),
    "unknown key": (["replica=10"], 2, ["replica: not a jaxsgd key", "Did you mean 'replicas'"]),
    "npz wrong keys": (["problem=npz", "problem.path={d}/wrong_keys.npz"], 2, ["problem.path=", "missing key(s) ['X', 'y']"]),
    "optax complaint": (["lr.schedule=cosine_decay_schedule", "+lr.schedule_kwargs.decay_steps=-5"], 2,
                        ["lr.schedule_kwargs={'decay_steps': -5}", "positive decay_steps"]),
    "sweep typo": (["--multirun", "variant=k_sync,k_asyn"], 2, ["variant='k_asyn' is not known", "Did you mean 'k_async'"]),
    "replicas 0": (["replicas=0"], 2, ["replicas=0 is invalid: must be an integer >= 1"]),
    "probs": (["delay=hyperexponential", "delay.probs=[0.5,0.6]"], 2, ["delay.probs=(0.5, 0.6) is invalid: must sum to 1"]),
    "lr eta": (["lr.eta=-0.1"], 2, ["lr.eta=(-0.1,) is invalid: must be > 0"]),
    "trace negative": (["delay=trace", "delay.path={d}/negative.csv"], 2, ["every compute time must be > 0"]),
    "npz NaN": (["problem=npz", "problem.path={d}/nan.npz"], 2, ["X contains NaN or infinite values"]),
    "npz missing": (["problem=npz", "problem.path={d}/none.npz"], 2, ["no such file"]),
    "experiment": (["+experiment=rac"], 2, ["Did you mean 'race'"]),
}
FAST_CLI = list(CLI)[:3]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, files, cache, request) -> dict:
    """The CLI cases of this session, run concurrently: {case: (status, stdout + stderr, output dir)}."""
    selected = {item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_cli_refuses_bad_input_without_traceback"}
    wanted = [c for c in CLI if c in selected]
    base = tmp_path_factory.mktemp("cli")
    running = {}
    for i, case in enumerate(wanted):
        args = [a.replace("{d}", str(files)) for a in CLI[case][0]]
        out = base / str(i)
        cmd = _command(*args, "progress=false", f"hydra.run.dir={out}", f"hydra.sweep.dir={out}", cache=cache)
        running[case] = (subprocess.Popen(cmd, cwd=base, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    done = {}
    for case, (proc, out) in running.items():
        stdout, stderr = proc.communicate(timeout=600)
        done[case] = (proc.returncode, stdout + stderr, out)
    return done


@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c in FAST_CLI else pytest.mark.slow) for c in CLI])
def test_cli_refuses_bad_input_without_traceback(case, cli_runs, files):
    _, status, fragments = CLI[case]
    returncode, output, out = cli_runs[case]
    assert returncode == status, output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment.replace("{d}", str(files)) in output, output
    written = [p.name for p in out.rglob("*") if p.name in app.FILES or p.name.startswith("sweep_")] if out.exists() else []
    assert written == [], "a bad input left result files"


# ================================================================================ divergence

def test_divergence_is_counted_reported_and_left_out(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="jaxsgd"):
        job, s = run_job(tmp_path / "some", "figure=true")
    json.loads((tmp_path / "some" / "summary.json").read_text())  # strict JSON: no NaN
    stable, unstable = s["grid"]
    assert stable["diverged_replicas"] == 0 and 0 < unstable["diverged_replicas"] < 40
    assert unstable["diverged_fraction"] == pytest.approx(unstable["diverged_replicas"] / 40)
    assert s["best_grid_point"] == {"lr.eta": 0.5} and s["all_diverged"] is False
    assert "replicas that never diverged" in s["aggregates"]
    n = unstable["diverged_replicas"]
    assert f"lr.eta=2.1: {n}/40 replicas diverged ({100 * n / 40:.1f}%), left out of the aggregates" in caplog.text
    curves = pd.read_parquet(tmp_path / "some" / "curves.parquet")
    finite = curves.groupby("lr.eta")["replicas_finite"].unique()
    assert finite[0.5].tolist() == [40] and finite[2.1].tolist() == [40 - n]
    assert np.isfinite(curves["error_mean"]).all()  # the diverged replicas are left out, not averaged in
    assert (tmp_path / "some" / "figure.png").is_file()


def test_a_job_where_every_replica_diverges_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="jaxsgd"):
        _, s = run_job(tmp_path / "all", "lr.eta=[3.0,4.0]", "target_error=0.1", "figure=true")
    assert s["all_diverged"] is True and s["diverged_replicas"] == 40 and s["diverged_fraction"] == 1.0
    assert s["final_error_mean"] is None and s["time_to_target_q50"] is None and s["reached_fraction"] == 0.0
    assert "every replica diverged (non-finite error) at every learning rate" in caplog.text
    assert "every replica diverged, time to 0.1: never" in caplog.text  # the job's line
    assert "nan" not in (tmp_path / "all" / "summary.json").read_text().lower()
    for name in ("curves", "curves_time"):
        df = pd.read_parquet(tmp_path / "all" / f"{name}.parquet")
        assert (df["replicas_finite"] == 0).all() and df["error_mean"].isna().all()  # empty, and marked as such
    assert (tmp_path / "all" / "figure.png").read_bytes()[:4] == b"\x89PNG"
    # a sweep holding such a job gathers, and its table says "diverged"
    root = tmp_path / "sweep"
    root.mkdir()
    (tmp_path / "all").rename(root / "1")
    run_job(root / "0")
    sweep = gather(root)
    assert len(sweep.summary) == 4 and render_table(sweep).count("diverged") == 2


# ================================================================================ crash safety

WRITERS = re.compile(r"\.to_parquet\(|\.savefig\(|json\.dump\(|\.write_text\(|\.write_bytes\(|np\.save|open\([^)]*['\"][wa]")


def test_every_result_writer_goes_through_atomic_write():
    """The app's files (summary, tables, figures; the sweep's gathered tables and figure) are written only
    by jaxsgd.outputs (a temporary name, then os.replace); the F* disk cache has its own atomic writer."""
    allowed = {"outputs.py", "solver.py"}
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "jaxsgd").rglob("*.py") if p.name not in allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1) if WRITERS.search(line)]
    assert offenders == []
    assert "os.replace(tmp, path)" in (ROOT / "jaxsgd" / "outputs.py").read_text()


def test_a_failed_write_leaves_its_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "t.json"
    outputs.write_json(target, {"a": 1})

    def boom(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outputs.atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_a_job_killed_while_writing_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    out = tmp_path / "job"
    run_job(out)  # a finished job in the directory ...
    assert app.finished(out) is not None
    (out / ".curves.parquet.123.deadbeef.tmp").write_text("left by a killed job")
    calls = []

    def dies_on_the_second_table(path, df):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # ... rerun with another seed, killed between two files
        return outputs.write_parquet(path, df)

    monkeypatch.setattr(app, "write_parquet", dies_on_the_second_table)
    with pytest.raises(KeyboardInterrupt):
        run_job(out, "seed=6")
    assert not (out / "summary.json").exists() and app.finished(out) is None  # the old summary went first
    assert not list(out.glob(".*.tmp"))
    assert gather(tmp_path) is None  # a sweep does not take it for a finished job


def test_resume_skips_a_finished_job_of_the_same_config(tmp_path, caplog):
    out = tmp_path / "job"
    job, first = run_job(out)
    files = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(first["config_hash"]) == 16
    with caplog.at_level(logging.INFO, logger="jaxsgd"):
        # runtime keys (progress, chunk, devices, compilation cache) do not change the results or the hash
        again, kept = run_job(out, "resume=true", "progress=true", "chunk=8", "devices=1")
    assert again.config_hash == job.config_hash
    assert f"resume: {out} holds the finished results of this config (config_hash {job.config_hash}): skipped" in caplog.text
    assert kept == first and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == files

    with pytest.raises(ConfigError, match=r"resume=true: .* holds the finished results of a different config .* does not overwrite"):
        run_job(out, "resume=true", "seed=6")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == files

    (out / "curves_time.parquet").unlink()  # finished in name only: run again
    run_job(out, "resume=true")
    assert (out / "curves_time.parquet").is_file() and (out / "summary.json").stat().st_mtime_ns > files["summary.json"]


def test_config_hash_covers_the_data_files(files):
    (files / "a.csv").write_text("1.0\n2.0\n")
    first = build(cfg("delay=trace", f"delay.path={files}/a.csv")).config_hash
    (files / "a.csv").write_text("1.0\n3.0\n")
    assert build(cfg("delay=trace", f"delay.path={files}/a.csv")).config_hash != first


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (status {proc.returncode}) before {path} appeared:\n{proc.stderr.read()}")
        if time.monotonic() > end:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_sweep_resumes_where_it_stopped(tmp_path, cache):
    """Kill a 4-job sweep as job 2 starts (jobs 0 and 1 finished, job 2 compiling a new variant): nothing of
    job 2 or of the gathered tables looks finished. resume=true skips jobs 0 and 1 (their files untouched) and
    runs jobs 2 and 3; the gathered tables hold all four."""
    root = tmp_path / "sweep"
    args = ["--multirun", "P=4", "K=2", "replicas=6", "updates=40", "record_every=10", "problem.dim=4", "progress=false",
            "figure=false", "variant=k_sync,k_async", "seed=1,2", f"hydra.sweep.dir={root}", "+hydra.callbacks.gather.figure=false"]
    root.mkdir()
    (root / "sweep_summary.parquet").write_text("gathered by an earlier sweep into the same directory")
    proc = subprocess.Popen(_command(*args, cache=cache), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(root / "2", proc)  # job 2 has started (its directory exists): jobs 0 and 1 are done
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert all((root / j / "summary.json").is_file() for j in "01")
    assert not (root / "2" / "summary.json").exists() and not (root / "3").exists()
    assert not (root / "sweep_summary.parquet").exists()  # the stale gathered table went when the sweep started
    mtimes = {f"{j}/{p.name}": p.stat().st_mtime_ns for j in "01" for p in (root / j).iterdir() if p.name in app.FILES}
    assert len(mtimes) == 6

    r = subprocess.run(_command(*args, "resume=true", cache=cache), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    for j in "01":
        assert f"resume: {root / j} holds the finished results of this config" in r.stderr
    assert r.stderr.count("): skipped") == 2
    assert {f"{j}/{p.name}": p.stat().st_mtime_ns for j in "01" for p in (root / j).iterdir() if p.name in app.FILES} == mtimes
    summary = pd.read_parquet(root / "sweep_summary.parquet")
    assert sorted(summary["job"]) == ["0", "1", "2", "3"]
    assert sorted(zip(summary["variant"], summary["seed"])) == [("k_async", 1), ("k_async", 2), ("k_sync", 1), ("k_sync", 2)]


# ================================================================================ reproducibility

def test_same_config_and_seed_give_bit_identical_tables(tmp_path):
    _, a = run_job(tmp_path / "a", "save_replicas=true")
    _, b = run_job(tmp_path / "b", "save_replicas=true")
    for name in ("curves", "curves_time", "replicas"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "b" / f"{name}.parquet"), check_exact=True)
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    _, c = run_job(tmp_path / "c", "seed=6")  # and the seed matters
    assert c["final_error_mean"] != a["final_error_mean"]


def test_replica_r_does_not_depend_on_the_replica_count(tmp_path):
    """Replicas 0..39 of a 200-replica job are those of the 40-replica job, bit for bit (and so for the chunk
    size and the number of devices: tests/test_engine.py)."""
    run_job(tmp_path / "small", "save_replicas=true")
    run_job(tmp_path / "big", "save_replicas=true", "replicas=200")
    small = pd.read_parquet(tmp_path / "small" / "replicas.parquet")
    big = pd.read_parquet(tmp_path / "big" / "replicas.parquet")
    pd.testing.assert_frame_equal(big[big["replica"] < 40].reset_index(drop=True), small, check_exact=True)


def test_results_carry_the_resolved_config_and_versions(tmp_path):
    job, s = run_job(tmp_path / "job")
    on_disk = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert on_disk["config"] == json.loads(json.dumps(job.config)) and on_disk["config"]["problem"]["h_min"] == 0.1
    assert on_disk["config_hash"] == job.config_hash and on_disk["precision"] == 32 and on_disk["backend"] == "cpu"
    assert on_disk["versions"]["jax"] == jax.__version__ and on_disk["versions"]["jaxsgd"] == on_disk["jaxsgd_version"]
    assert {"jaxlib", "numpy", "optax", "python"} <= set(on_disk["versions"])
    assert on_disk["overrides"] == [] and on_disk["files"][-1] == "summary.json"


# ================================================================================ precision

@pytest.fixture
def float64():
    """precision=64 the way the app applies it (app.configure_jax), undone afterwards."""
    before = (jax.config.jax_enable_x64, jax.config.jax_compilation_cache_dir)
    yield lambda job: app.configure_jax(job.runtime)
    jax.config.update("jax_enable_x64", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])


def _agree(c32: pd.DataFrame, c64: pd.DataFrame, z: float) -> None:
    """Mean error curves within z combined standard errors at every record after the start (the noise differs:
    float64 draws its own random numbers), and equal at the start."""
    np.testing.assert_allclose(c32["error_mean"].iloc[0], c64["error_mean"].iloc[0], rtol=1e-6)
    se = np.hypot(c32["error_sem"], c64["error_sem"]).iloc[1:]
    diff = (c32["error_mean"] - c64["error_mean"]).abs().iloc[1:]
    assert (diff <= z * se).all(), (diff / se).max()


def test_precision_64_agrees_with_float32_on_the_nqm(tmp_path, float64):
    """At the stable rate (eta 0.5) of COMMON with 200 replicas: the mean error curves agree within 4 combined
    standard errors at every record, both follow the exact recursion, and E[T] agrees within 5%."""
    job32, s32 = run_job(tmp_path / "32", "replicas=200")
    job64 = build(cfg(*COMMON, "replicas=200", "precision=64"))
    assert job64.runtime.precision == 64 and job64.config_hash != job32.config_hash
    float64(job64)
    assert jax.numpy.zeros(()).dtype == np.float64
    s64 = app.run(job64, tmp_path / "64", {})
    assert s64["precision"] == 64 and s32["precision"] == 32
    c32, c64 = (pd.read_parquet(tmp_path / p / "curves.parquet").query("`lr.eta` == 0.5").reset_index(drop=True)
                for p in ("32", "64"))
    _agree(c32, c64, z=4.0)
    for c in (c32, c64):  # both follow the exact recursion of SPEC §6 within Monte Carlo error
        assert ((c["error_mean"] - c["error_theory"]).abs().iloc[1:] <= 4 * c["error_sem"].iloc[1:]).all()
    assert s64["time_per_update"] == pytest.approx(s32["time_per_update"], rel=0.05)


@pytest.mark.slow
def test_precision_64_agrees_with_float32_without_noise(tmp_path, float64):
    """With sigma2 = 0 the k_sync error does not depend on any random draw: float32 and float64 agree to
    relative 1e-5 at every record (rounding only)."""
    over = ["lr.eta=0.5", "problem.sigma2=0", "replicas=4", "save_replicas=true"]
    run_job(tmp_path / "32", *over)
    job64 = build(cfg(*COMMON, *over, "precision=64"))
    float64(job64)
    app.run(job64, tmp_path / "64", {})
    e32, e64 = (pd.read_parquet(tmp_path / p / "replicas.parquet")["error"].to_numpy() for p in ("32", "64"))
    np.testing.assert_allclose(e32, e64, rtol=1e-5)
    assert not np.array_equal(e32, e64)  # really two precisions
