"""The application's configuration: Hydra structured-config schemas and `build`, the one function that
turns a composed config into library objects (nothing else in jaxsgd reads omegaconf).

The group options (variant, delay, problem, lr, optimizer) are generated from the library's registries,
so every law, problem and rule is an option named as in the library, with its constructor's parameters
(types from the annotations, defaults from the constructor). The top-level keys are typed by
`JobConfig`; their default values live in conf/config.yaml, with experiment presets in conf/experiment/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from . import delays, lr, problems, variants
from .app import Job, Runtime
from .errors import MAX_SEED, ConfigError, positive, positive_int, require, suggest
from .lr import Optimizer

__all__ = ["CONF_DIR", "JobConfig", "register", "options", "runtime", "build", "config_hash", "RUNTIME_KEYS", "MAX_SEED"]

_PACKAGE = Path(__file__).resolve().parent


def _conf_dir() -> Path:
    """conf/ of a checkout (or an editable install) when there is one, else the copy inside the package."""
    top = _PACKAGE.parent
    if (top / "conf" / "config.yaml").is_file() and (top / "pyproject.toml").is_file():
        return top / "conf"
    return _PACKAGE / "conf"


#: The directory holding config.yaml and experiment/ (Hydra's config_path).
CONF_DIR = _conf_dir()

#: Optimizer options (any other optax optimizer: optimizer.name=NAME).
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


@dataclasses.dataclass
class JobConfig:
    """Types of the top-level keys; their defaults and meaning are in conf/config.yaml."""

    variant: str = MISSING  # set by the `variant` group
    P: int = MISSING
    K: int | None = MISSING
    replicas: int = MISSING
    updates: int = MISSING
    record_every: int = MISSING
    batch_size: int = MISSING
    seed: int = MISSING
    target_error: float | None = MISSING
    speeds: Any = MISSING
    save_replicas: bool = MISSING
    figure: bool = MISSING
    progress: bool = MISSING
    chunk: int | None = MISSING
    devices: int | None = MISSING
    precision: int = MISSING
    compilation_cache: str | None = MISSING
    resume: bool = MISSING
    delay: Any = MISSING
    problem: Any = MISSING
    lr: Any = MISSING
    optimizer: Any = MISSING


@dataclasses.dataclass
class OptimizerConfig:
    name: str = "sgd"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# schemas generated from the library's classes

_PRIMITIVES = (float, int, str, bool)


def _config_type(hint: Any) -> Any:
    """The OmegaConf type of a constructor annotation: primitives, Optional primitives and lists of a
    primitive are checked at compose time; anything else (e.g. `float | tuple` grid fields) is Any and
    checked by the library constructor."""
    if hint in _PRIMITIVES:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(args) == 2 and len(rest) == 1 and rest[0] in _PRIMITIVES:
            return rest[0] | None
    if origin in (tuple, list) and args and args[0] in _PRIMITIVES and all(a in (args[0], Ellipsis) for a in args):
        return list[args[0]]
    return Any


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be evaluated: leave every field untyped
        return {}


def _schema(option: str, cls: type) -> type:
    """A structured-config dataclass for one library class: `name` (the option) + its constructor fields."""
    hints = _hints(cls)
    fields: list[tuple] = [("name", str, dataclasses.field(default=option))]
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "name":
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        typ = _config_type(hints.get(f.name, Any))
        if f.name.endswith("kwargs") and default in ((), None, {}):
            typ, default = dict[str, Any], {}
        if isinstance(default, (tuple, list, dict)):
            value = list(default) if isinstance(default, tuple) else default
            spec = dataclasses.field(default_factory=lambda v=value: v.copy())
        else:
            spec = dataclasses.field(default=default)
        fields.append((f.name, typ, spec))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def options() -> dict[str, dict[str, Any]]:
    """Every group option: {group: {option: schema dataclass or dict node}}, from the library's registries."""
    return {
        "variant": {v: {"variant": v} for v in variants.NAMES},
        "delay": {n: _schema(n, c) for n, c in delays.LAWS.items()},
        "problem": {n: _schema(n, c) for n, c in problems.PROBLEMS.items()},
        "lr": {n: _schema(n, c) for n, c in lr.RULES.items()},
        "optimizer": {n: OptimizerConfig(name=n) for n in OPTIMIZERS},
    }


def register() -> None:
    """Store the schemas in Hydra's ConfigStore: `base_config` (the top-level keys) and every group option."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=JobConfig)
    for group, opts in options().items():
        package = "_global_" if group == "variant" else group  # a variant option sets the top-level `variant`
        for name, node in opts.items():
            cs.store(group=group, name=name, node=node, package=package)


register()


# --------------------------------------------------------------------------------------------------
# config -> typed objects


def _container(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{key} is required and has no value: set it, e.g. {key}=VALUE.") from None
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None


def _cache_dir(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value == "auto":
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "jaxsgd", "jax")
    return os.path.abspath(os.path.expanduser(value))


def runtime(cfg: DictConfig | dict) -> Runtime:
    """The JAX settings of a config (precision, devices, compilation cache), checked."""
    c = _container(cfg) if isinstance(cfg, DictConfig) else cfg
    precision = c["precision"]
    require(precision in (32, 64), "precision", precision, "allowed: 32, 64")
    devices = c["devices"]
    if devices is not None:
        devices = positive_int("devices", devices)
    return Runtime(precision, devices, _cache_dir(c["compilation_cache"]))


def _split(node: dict) -> tuple[str, dict]:
    """(option name, constructor parameters) of a group node."""
    params = dict(node)
    return params.pop("name"), params


def _make(group: str, registry: dict, make, node: dict):
    """Build a group's library object, checking its parameter names first (with close suggestions) and
    turning any other complaint of the constructor (a ValueError or TypeError, e.g. from optax) into a
    ConfigError that names the group."""
    name, params = _split(node)
    cls = registry.get(name)
    if cls is not None:
        fields = sorted(f.name for f in dataclasses.fields(cls) if f.init)
        for key in params:
            if key not in fields:
                raise ConfigError(f"{group}.{key}: {group}={name} has no parameter {key!r}; its parameters are "
                                  f"{', '.join(fields)}.{suggest(key, fields)}")
    try:
        return make(name, **params)
    except ConfigError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        shown = ", ".join(f"{group}.{k}={v!r}" for k, v in params.items())
        raise ConfigError(f"{group}={name} ({shown}) is invalid: {exc}") from None


#: Keys that change how a job runs, not what it computes: left out of the config hash (see `config_hash`).
RUNTIME_KEYS = ("progress", "compilation_cache", "resume", "devices", "chunk")


def config_hash(config: dict, data: dict | None = None) -> str:
    """A short hash of what determines a job's results: the resolved config without RUNTIME_KEYS (and
    without Hydra's keys, which a job's config never holds), plus `data`, the digests of the files the
    job reads (a trace, an .npz), so that an edited file is a different config."""
    payload = {k: v for k, v in config.items() if k not in RUNTIME_KEYS}
    payload["_data"] = data or {}
    text = json.dumps(payload, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _data_digests(delay, problem) -> dict:
    out = {}
    if getattr(delay, "_digest", None):  # delays.Trace: sha1 of its values
        out["delay"] = delay._digest
    if getattr(problem, "sha1", None):  # problems.Npz: sha1 of the file
        out["problem"] = problem.sha1
    return out


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(replicas: int, updates: int, record_every: int, grid: int, save_replicas: bool) -> None:
    """Refuse a job whose records alone would not fit in this machine's memory (before compute, rather
    than fail with MemoryError after the simulation)."""
    records = updates // record_every + 1
    per_value = replicas * records * 8
    need = per_value * (2 * grid + 3)  # error and accuracy per grid point, time, staleness; and the tables
    if save_replicas:
        need += per_value * grid * 8  # replicas.parquet in long form: ~8 columns
    total = _physical_memory()
    if total and need > 0.8 * total:
        raise ConfigError(
            f"replicas={replicas} x updates/record_every={records - 1} records x {grid} learning-rate grid point(s)"
            f"{' with save_replicas=true' if save_replicas else ''} need about {need / 2**30:.1f} GiB of memory for the "
            f"records, more than this machine's {total / 2**30:.1f} GiB allows: raise record_every or lower replicas."
        )


def build(cfg: DictConfig) -> Job:
    """Turn a composed config into a Job of library objects, checking every value (ConfigError names the key).

    Variant aliases fix K themselves (sync: K = P, async: K = 1): for them the top-level K, which is the
    K of the k_* variants, is not used, and a note says so when it differs.
    """
    c = _container(cfg)
    keys = [f.name for f in dataclasses.fields(JobConfig)]
    unknown_keys = sorted(set(c) - set(keys))
    if unknown_keys:  # added with +KEY=VALUE
        raise ConfigError(f"{', '.join(unknown_keys)}: not a jaxsgd key; the keys are {', '.join(keys)}."
                          f"{suggest(unknown_keys[0], keys)}")
    rt = runtime(c)
    delay = _make("delay", delays.LAWS, delays.make, c["delay"])
    problem = _make("problem", problems.PROBLEMS, problems.make, c["problem"])
    rule = _make("lr", lr.RULES, lr.make, c["lr"])
    optimizer = _make("optimizer", {}, lambda name, kwargs: Optimizer(name, kwargs), c["optimizer"])

    variant, P, K = c["variant"], c["P"], c["K"]
    notes = []
    if variant in variants.ALIASES:
        setting = variants.resolve(variant, P)
        if K is not None and K != setting.K:
            fixed = f"K=P={setting.K}" if variant == "sync" else "K=1"
            notes.append(f"variant={variant} fixes {fixed}; K={K} applies to the k_* variants only")
    else:
        setting = variants.resolve(variant, P, K)
    delays.speeds(c["speeds"], setting.P)  # checks a pattern name or the P factors
    speeds = tuple(c["speeds"]) if isinstance(c["speeds"], list) else c["speeds"]

    updates = positive_int("updates", c["updates"])
    record_every = positive_int("record_every", c["record_every"])
    require(updates % record_every == 0, "record_every", record_every, f"must divide updates={updates}")
    target = None if c["target_error"] is None else positive("target_error", c["target_error"])
    chunk = None if c["chunk"] is None else positive_int("chunk", c["chunk"])
    replicas = positive_int("replicas", c["replicas"])
    seed = positive_int("seed", c["seed"], minimum=0)
    require(seed <= MAX_SEED, "seed", seed, f"must be an integer in 0..{MAX_SEED}")
    _check_memory(replicas, updates, record_every, rule.grid_size, bool(c["save_replicas"]))
    return Job(
        setting=setting,
        delay=delay,
        problem=problem,
        lr=rule,
        optimizer=optimizer,
        updates=updates,
        replicas=replicas,
        record_every=record_every,
        batch_size=positive_int("batch_size", c["batch_size"]),
        seed=seed,
        speeds=speeds,
        chunk=chunk,
        target_error=target,
        save_replicas=bool(c["save_replicas"]),
        figure=bool(c["figure"]),
        progress=bool(c["progress"]),
        runtime=rt,
        config=c,
        notes=tuple(notes),
        resume=bool(c["resume"]),
        config_hash=config_hash(c, _data_digests(delay, problem)),
    )
