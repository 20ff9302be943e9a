"""Delay laws (SPEC §7): sampling matches the stated mean and cdf, JAX-friendliness, hashing, trace
files, `make`, speed patterns and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsgd import delays
from jaxsgd.delays import (
    LAWS,
    SPEED_PATTERNS,
    Constant,
    Exponential,
    Gamma,
    Hyperexponential,
    LogNormal,
    Pareto,
    ShiftedExponential,
    Trace,
    Uniform,
    Weibull,
    make,
    speeds,
)
from jaxsgd.errors import ConfigError

N_DRAWS = 200_000
TRACE_VALUES = np.array([0.5, 1.0, 1.0, 2.0, 3.5, 0.75, 1.25])


@pytest.fixture(scope="module")
def trace_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("trace") / "times.csv"
    path.write_text("seconds,host\n" + "".join(f"{v},node{i}\n" for i, v in enumerate(TRACE_VALUES)))
    return str(path)


def build(name: str, trace_path: str):
    """One instance of every law, with parameters whose variance is finite."""
    return {
        "exponential": lambda: Exponential(rate=2.0),
        "shifted_exponential": lambda: ShiftedExponential(shift=0.5, rate=2.0),
        "pareto": lambda: Pareto(scale=1.0, shape=4.5),
        "lognormal": lambda: LogNormal(mu=0.1, sigma=0.5),
        "weibull": lambda: Weibull(scale=1.0, shape=0.8),
        "gamma": lambda: Gamma(shape=2.0, scale=0.5),
        "uniform": lambda: Uniform(low=0.5, high=1.5),
        "constant": lambda: Constant(value=1.5),
        "hyperexponential": lambda: Hyperexponential(probs=(0.9, 0.1), rates=(2.0, 0.2)),
        "trace": lambda: Trace(path=trace_path),
    }[name]()


LAW_NAMES = sorted(LAWS)


def test_every_law_is_covered():
    assert set(LAW_NAMES) == {
        "exponential", "shifted_exponential", "pareto", "lognormal", "weibull", "gamma", "uniform",
        "constant", "hyperexponential", "trace",
    }
    for name, cls in LAWS.items():
        assert cls.name == name


@pytest.mark.parametrize("name", LAW_NAMES)
def test_sample_mean_matches_mean(name, trace_csv):
    law = build(name, trace_csv)
    x = np.asarray(law.sample(jax.random.key(7), (N_DRAWS,)), dtype=np.float64)
    assert x.shape == (N_DRAWS,)
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    # float32 sampling may round a draw to exactly 0 (about 2^-23 per draw for exponential-type laws)
    assert np.mean(x == 0) < 1e-4
    assert x.min() >= law.support_start * (1 - 1e-6)
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.mean() - law.mean) <= 4 * se + 1e-6 * law.mean, (x.mean(), law.mean, se)


@pytest.mark.parametrize("name", LAW_NAMES)
def test_sample_follows_cdf(name, trace_csv):
    """Kolmogorov-Smirnov-style: sup |ecdf - cdf| over the sample points within 1.5 x the 1% critical
    value (1.63 / sqrt(n)); right-continuous ecdf, so this works for the discrete laws as well."""
    law = build(name, trace_csv)
    x = np.sort(np.asarray(law.sample(jax.random.key(11), (N_DRAWS,)), dtype=np.float64))
    points = np.unique(x)
    ecdf = np.searchsorted(x, points, side="right") / x.size
    d = float(np.max(np.abs(ecdf - law.cdf(points))))
    assert d < 1.5 * 1.63 / math.sqrt(x.size), d


@pytest.mark.parametrize("name", LAW_NAMES)
def test_cdf_is_a_cdf(name, trace_csv):
    law = build(name, trace_csv)
    grid = np.linspace(0.0, 20.0, 401)
    F = np.asarray(law.cdf(grid))
    assert F.shape == grid.shape
    assert np.all(np.diff(F) >= -1e-12) and F[0] >= 0 and F[-1] <= 1
    assert float(law.cdf(law.support_start - 1e-9)) == 0.0  # nothing below the support
    np.testing.assert_allclose(law.sf(grid), 1 - F)
    # the mean is the integral of the survival function
    fine = np.linspace(0.0, 400.0, 400_001)
    assert np.trapezoid(law.sf(fine), fine) == pytest.approx(law.mean, rel=2e-3)


@pytest.mark.parametrize("name", LAW_NAMES)
def test_sample_under_jit_and_vmap(name, trace_csv):
    law = build(name, trace_csv)
    key = jax.random.key(3)
    eager = law.sample(key, (6,))
    assert eager.shape == (6,) and eager.dtype == jnp.float32
    # jitted, with the law as a static argument (it is hashable)
    jitted = jax.jit(lambda lw, k: lw.sample(k, (6,)), static_argnums=0)(law, key)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    # vmapped over keys (under jit): row i is what key i draws on its own
    keys = jax.random.split(key, 5)
    batched = jax.jit(jax.vmap(lambda k: law.sample(k, (2,))))(keys)
    assert batched.shape == (5, 2)
    for i in (0, 4):
        np.testing.assert_allclose(batched[i], law.sample(keys[i], (2,)), rtol=1e-6)


@pytest.mark.parametrize("name", LAW_NAMES)
def test_laws_are_hashable_values(name, trace_csv):
    law = build(name, trace_csv)
    twin = type(law)(**law.params())
    assert twin == law and hash(twin) == hash(law)
    assert {law: "x"}[twin] == "x"
    assert law.describe().startswith(name + "(")
    assert make(name, **law.params()) == law


def test_equal_parameters_equal_laws_and_different_differ():
    assert Exponential(rate=2) == Exponential(rate=2.0)
    assert hash(Exponential(rate=2)) == hash(Exponential(rate=2.0))
    assert Exponential(rate=2.0) != Exponential(rate=3.0)
    assert Hyperexponential(probs=[0.5, 0.5], rates=[1, 2]) == Hyperexponential(probs=(0.5, 0.5), rates=(1.0, 2.0))
    assert len({Pareto(1.0, 3.0), Pareto(1.0, 3.0), Pareto(1.0, 2.5)}) == 2


def test_closed_form_means():
    assert Exponential(rate=4.0).mean == pytest.approx(0.25)
    assert ShiftedExponential(shift=1.0, rate=2.0).mean == pytest.approx(1.5)
    assert Pareto(scale=2.0, shape=3.0).mean == pytest.approx(3.0)
    assert Pareto(scale=1.0, shape=1.0).mean == math.inf
    assert LogNormal(mu=0.2, sigma=0.6).mean == pytest.approx(math.exp(0.2 + 0.18))
    assert Weibull(scale=2.0, shape=1.0).mean == pytest.approx(2.0)
    assert Gamma(shape=3.0, scale=0.5).mean == pytest.approx(1.5)
    assert Uniform(low=1.0, high=3.0).mean == pytest.approx(2.0)
    assert Constant(value=0.7).mean == pytest.approx(0.7)
    assert Hyperexponential(probs=(0.5, 0.5), rates=(1.0, 0.25)).mean == pytest.approx(2.5)


def test_constant_cdf_of_its_own_sample_is_one():
    law = Constant(value=0.7)
    x = np.asarray(law.sample(jax.random.key(0), (3,)))
    np.testing.assert_array_equal(law.cdf(x), 1.0)


# ------------------------------------------------------------------ traces

def test_trace_csv_with_header(trace_csv):
    law = Trace(path=trace_csv)
    np.testing.assert_array_equal(law.values, TRACE_VALUES)
    assert law.mean == pytest.approx(TRACE_VALUES.mean())
    assert law.support_start == TRACE_VALUES.min()
    draws = np.asarray(law.sample(jax.random.key(0), (1000,)))
    assert set(np.unique(draws)) <= set(TRACE_VALUES.astype(np.float32))


def test_trace_csv_without_header_and_npy_are_the_same_law(tmp_path, trace_csv):
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(str(v) for v in TRACE_VALUES) + "\n\n")  # a trailing blank line is fine
    npy = tmp_path / "times.npy"
    np.save(npy, TRACE_VALUES)
    a, b, c = Trace(path=str(plain)), Trace(path=str(npy)), Trace(path=trace_csv)
    np.testing.assert_array_equal(a.values, TRACE_VALUES)
    np.testing.assert_array_equal(b.values, TRACE_VALUES)
    assert a == b == c and hash(a) == hash(b) == hash(c)
    key = jax.random.key(5)
    np.testing.assert_array_equal(a.sample(key, (50,)), b.sample(key, (50,)))
    assert make("trace", path=str(npy)) == a
    d = tmp_path / "other.npy"
    np.save(d, TRACE_VALUES * 2)
    assert Trace(path=str(d)) != a


def test_trace_cdf_is_the_empirical_cdf(trace_csv):
    law = Trace(path=trace_csv)
    assert law.cdf(0.4) == 0.0
    assert law.cdf(1.0) == pytest.approx(4 / 7)  # 0.5, 0.75, 1.0, 1.0
    assert law.cdf(3.5) == 1.0


@pytest.mark.parametrize(
    ("contents", "suffix"),
    [
        ("", ".csv"),  # empty file
        ("seconds\n", ".csv"),  # header only
        ("seconds\n1.0\nfast\n2.0\n", ".csv"),  # non-numeric row
        ("abc\ndef\n", ".csv"),  # nothing numeric
        ("1.0\nnan\n2.0\n", ".csv"),
        ("1.0\ninf\n", ".csv"),
        ("1.0\n-2.0\n", ".csv"),
        ("1.0\n0\n", ".csv"),
        (np.array([1.0, np.nan]), ".npy"),
        (np.array([1.0, np.inf]), ".npy"),
        (np.array([1.0, 0.0]), ".npy"),
        (np.array([]), ".npy"),
        (np.array(["a", "b"]), ".npy"),
        ("this is not an npy file", ".npy"),
    ],
    ids=["empty", "header-only", "non-numeric-row", "all-text", "nan", "inf", "negative", "zero", "npy-nan",
         "npy-inf", "npy-zero", "npy-empty", "npy-strings", "npy-garbage"],
)
def test_bad_trace_files(tmp_path, contents, suffix):
    path = tmp_path / f"bad{suffix}"
    if isinstance(contents, np.ndarray):
        np.save(path, contents)
    else:
        path.write_text(contents)
    with pytest.raises(ConfigError, match="delay.path"):
        Trace(path=str(path))


def test_missing_trace_file(tmp_path):
    with pytest.raises(ConfigError, match="delay.path"):
        Trace(path=str(tmp_path / "nowhere.csv"))
    with pytest.raises(ConfigError, match="delay.path"):
        Trace(path="")
    with pytest.raises(ConfigError, match="delay.path"):
        make("trace")


# ------------------------------------------------------------------ make

def test_make_builds_laws_by_name():
    assert make("pareto", scale=1, shape=2.5) == Pareto(scale=1.0, shape=2.5)
    assert make("exponential") == Exponential()
    assert make("shifted_exponential", shift=2.0, rate=0.5) == ShiftedExponential(2.0, 0.5)
    assert make("hyperexponential", probs=[0.2, 0.8], rates=[1.0, 3.0]) == Hyperexponential((0.2, 0.8), (1.0, 3.0))
    assert make("hyperexponential", probs=1.0, rates=2.0) == Hyperexponential((1.0,), (2.0,))
    for name in LAW_NAMES:
        if name != "trace":
            assert isinstance(make(name), LAWS[name])
    assert delays.make is make


def test_make_unknown_law_suggests():
    with pytest.raises(ConfigError, match="delay") as e:
        make("paretto", scale=1.0)
    assert "'pareto'" in str(e.value).split("Did you mean")[1]
    with pytest.raises(ConfigError, match="Did you mean") as e:
        make("shifted_exp")
    assert "'shifted_exponential'" in str(e.value).split("Did you mean")[1]


def test_make_unknown_parameter_is_named():
    with pytest.raises(ConfigError, match="lambda"):
        make("exponential", **{"lambda": 2.0})
    with pytest.raises(ConfigError, match="alpha"):
        make("pareto", scale=1.0, alpha=3.0)


# ------------------------------------------------------------------ speeds

def test_speed_patterns():
    assert speeds(None, 4) is None
    assert speeds("homogeneous", 4) is None
    np.testing.assert_allclose(speeds("sqrt", 4), np.sqrt([1, 2, 3, 4]))
    np.testing.assert_allclose(speeds("linear", 5), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(speeds("two_tier", 4), [1, 1, 4, 4])
    np.testing.assert_allclose(speeds([0.5, 2, 3], 3), [0.5, 2, 3])
    np.testing.assert_allclose(speeds(np.array([1.0, 2.0]), 2), [1.0, 2.0])
    for pattern in SPEED_PATTERNS:
        for P in (1, 2, 7):
            s = speeds(pattern, P)
            assert s is None or (s.shape == (P,) and np.all(s > 0))


@pytest.mark.parametrize(
    "spec",
    [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 2.0], [1.0, -1.0, 2.0], [1.0, np.nan, 2.0], [1.0, np.inf, 2.0],
     "quadratic"],
    ids=["short", "long", "zero", "negative", "nan", "inf", "unknown"],
)
def test_bad_speeds(spec):
    with pytest.raises(ConfigError, match="speeds"):
        speeds(spec, 3)


def test_unknown_speed_pattern_suggests():
    with pytest.raises(ConfigError, match="'sqrt'"):
        speeds("sqr", 3)


def test_non_numeric_speeds_are_a_config_error():
    with pytest.raises(ConfigError, match="speeds"):
        speeds(["a", "b", "c"], 3)


# ------------------------------------------------------------------ bad parameters

@pytest.mark.parametrize(
    ("make_law", "field"),
    [
        (lambda: Exponential(rate=0.0), "rate"),
        (lambda: Exponential(rate=-1.0), "rate"),
        (lambda: Exponential(rate=math.inf), "rate"),
        (lambda: Exponential(rate=math.nan), "rate"),
        (lambda: Exponential(rate="fast"), "rate"),
        (lambda: ShiftedExponential(shift=-1.0, rate=1.0), "shift"),
        (lambda: ShiftedExponential(shift=1.0, rate=0.0), "rate"),
        (lambda: Pareto(scale=0.0, shape=3.0), "scale"),
        (lambda: Pareto(scale=1.0, shape=-3.0), "shape"),
        (lambda: Pareto(scale=1.0, shape=0.0), "shape"),
        (lambda: LogNormal(mu=0.0, sigma=0.0), "sigma"),
        (lambda: LogNormal(mu=0.0, sigma=-1.0), "sigma"),
        (lambda: LogNormal(mu=math.inf, sigma=1.0), "mu"),
        (lambda: Weibull(scale=0.0, shape=1.0), "scale"),
        (lambda: Weibull(scale=1.0, shape=-1.0), "shape"),
        (lambda: Gamma(shape=0.0, scale=1.0), "shape"),
        (lambda: Gamma(shape=1.0, scale=-2.0), "scale"),
        (lambda: Uniform(low=1.0, high=1.0), "high"),
        (lambda: Uniform(low=2.0, high=1.0), "high"),
        (lambda: Uniform(low=-1.0, high=1.0), "low"),
        (lambda: Constant(value=0.0), "value"),
        (lambda: Constant(value=-1.0), "value"),
        (lambda: Hyperexponential(probs=(1.2, -0.2), rates=(1.0, 2.0)), "probs"),
        (lambda: Hyperexponential(probs=(0.5, 0.4), rates=(1.0, 2.0)), "probs"),
        (lambda: Hyperexponential(probs=(0.5, 0.6), rates=(1.0, 2.0)), "probs"),
        (lambda: Hyperexponential(probs=(0.5, 0.5), rates=(1.0, 2.0, 3.0)), "rates"),
        (lambda: Hyperexponential(probs=(0.5, 0.5), rates=(1.0, 0.0)), "rates"),
        (lambda: Hyperexponential(probs=(), rates=()), "probs"),
        (lambda: Hyperexponential(probs=("a", "b"), rates=(1.0, 2.0)), "probs"),
        (lambda: make("gamma", shape=-1.0), "shape"),
    ],
)
def test_bad_parameters(make_law, field):
    with pytest.raises(ConfigError, match=rf"delay\.{field}"):
        make_law()
