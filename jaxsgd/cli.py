"""The Hydra application behind `python -m jaxsgd` and the `jaxsgd` command: one job per run; --multirun
sweeps any keys, and the GatherSweep callback gathers the jobs.

Bad input ends the process with status 2 and one message naming the key, the value and what is allowed,
without a traceback: a misspelled group option or key is caught before Hydra starts (`preflight`, with
close suggestions, which Hydra's own message lacks), a bad value when the job's config is built. Values
that Hydra itself rejects (e.g. text for an integer key) end with Hydra's message and status 1.

The task function lives here, in an importable module, so that launchers running jobs in other processes
(joblib, submitit) can pickle it by reference."""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
from collections.abc import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import app
from .config import CONF_DIR, JobConfig, build, options, runtime
from .errors import ConfigError, suggest, unknown

log = logging.getLogger("jaxsgd")

#: Exit status of a run ended by bad input.
USAGE_ERROR = 2


def _meta() -> dict:
    """What Hydra knows about this job: its overrides, group choices and number in a sweep."""
    hc = HydraConfig.get()
    choices = {k: v for k, v in OmegaConf.to_container(hc.runtime.choices).items() if not k.startswith("hydra")}
    num = hc.job.get("num") if hc.mode.name == "MULTIRUN" else None
    return {"overrides": list(hc.overrides.task), "choices": choices, "job_num": num}


def task(cfg: DictConfig) -> None:
    """Run one job into Hydra's output directory; a ConfigError ends the process with status 2."""
    try:
        app.configure_jax(runtime(cfg))  # before any JAX computation
        job = build(cfg)
        app.run(job, HydraConfig.get().runtime.output_dir, _meta())
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(USAGE_ERROR) from None


# --------------------------------------------------------------------------------------------------
# preflight: group options and keys, checked against the library before Hydra composes anything


def _group_params() -> dict[str, dict[str, set[str]]]:
    """{group: {option: its parameter names}} for the groups generated from the library."""
    out: dict[str, dict[str, set[str]]] = {}
    for group, opts in options().items():
        out[group] = {}
        for name, node in opts.items():
            if dataclasses.is_dataclass(node):
                out[group][name] = {f.name for f in dataclasses.fields(node)}
            else:
                out[group][name] = set(node) if group != "variant" else set()
    return out


def _yaml_options(group: str, config_dir: str | None) -> set[str] | None:
    """The options of a group of yaml files under conf/ (e.g. experiment, experiment/lr_rule); None when
    unknown here (not a directory of conf/, or an extra --config-dir may add more)."""
    d = CONF_DIR / group
    if config_dir or not d.is_dir():
        return None
    return {p.stem for p in d.glob("*.yaml")}


def _defaults() -> dict[str, str]:
    """{group: default option} from the defaults list of conf/config.yaml."""
    out = {}
    try:
        for entry in OmegaConf.load(CONF_DIR / "config.yaml").get("defaults", []):
            if isinstance(entry, (DictConfig, dict)):
                out.update({str(k): str(v) for k, v in dict(entry).items()})
    except Exception:  # an unreadable config.yaml: Hydra will say so
        pass
    return out


def _values(override) -> list[str] | None:
    """The option names an override selects (every value of a choice sweep); None when unknown (glob)."""
    if override.is_delete():
        return None
    if override.is_sweep_override():
        if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
            return None
        return [str(v) for v in override.sweep_string_iterator()]
    return [override.get_value_element_as_str()]


def _command_line(argv: Sequence[str]):
    """(Hydra's parsed arguments, an overrides parser, the parsed overrides) of a command line that runs
    jobs; None for --help and the like, or when it does not parse (Hydra says why)."""
    try:
        from hydra._internal.utils import get_args_parser
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = get_args_parser().parse_args(list(argv))
        if args.help or args.hydra_help or args.shell_completion or args.info:
            return None
        parser = OverridesParser.create()
        return args, parser, parser.parse_overrides(args.overrides)
    except (Exception, SystemExit):  # Hydra reports what it cannot parse
        return None


def preflight(argv: Sequence[str]) -> str | None:
    """The message for the first override that names an unknown group option or an unknown key, with close
    suggestions; None when every one is known, or when the command line does not parse (Hydra says why)."""
    parsed = _command_line(argv)
    if parsed is None:
        return None
    args, _, overrides = parsed

    params = _group_params()
    groups = {**{g: set(o) for g, o in params.items()}, "experiment": _yaml_options("experiment", args.config_dir)}
    keys = [f.name for f in dataclasses.fields(JobConfig)]
    # the options this command line selects, group by group (None: not known here)
    chosen: dict[str, set[str] | None] = {g: {d} for g, d in _defaults().items() if g in params}
    presets = [o for o in overrides if not o.key_or_group.startswith("hydra")
               and (o.key_or_group == "experiment" or "/" in o.key_or_group)]
    if presets:
        chosen = {g: None for g in params}  # a preset (experiment, experiment/lr_rule, ...) may change any group's option
    for o in overrides:
        if o.key_or_group in params and o.package is None:
            vals = _values(o)
            chosen[o.key_or_group] = None if vals is None else set(vals)

    for o in overrides:
        key = o.key_or_group
        if key.startswith("hydra") or o.package is not None:
            continue
        if key in groups or "/" in key:  # GROUP=OPTION (a nested group: experiment/lr_rule=...)
            allowed = groups[key] if key in groups else _yaml_options(key, args.config_dir)
            for value in _values(o) or []:
                if allowed is not None and value not in allowed:
                    hint = " (any other optax optimizer: optimizer.name=NAME)" if key == "optimizer" else ""
                    return f"{unknown(key, value, allowed)}{hint}"
            continue
        top, _, rest = key.partition(".")
        if top not in keys and top not in groups:
            return (f"{key}: not a jaxsgd key; the keys are {', '.join(keys)} (groups: {', '.join(groups)})."
                    f"{suggest(top, keys + list(groups))}")
        if top in params and rest:
            param = rest.split(".")[0]
            opts = chosen.get(top) or set(params[top])
            known = set().union(*(params[top].get(op, set()) for op in opts)) if opts else set()
            if not known:  # an option we do not know: its own message comes first
                continue
            if param not in known:
                which = f"{top}={'|'.join(sorted(opts))}" if chosen.get(top) else top
                return (f"{key}: {which} has no parameter {param!r}; its parameters are "
                        f"{', '.join(sorted(known - {'name'}))}.{suggest(param, sorted(known - {'name'}))}")
    return None


# --------------------------------------------------------------------------------------------------
# sweep check: every job of a sweep built before the first one runs

#: Hydra's exit status for a config it cannot compose (e.g. text for an integer key)
HYDRA_ERROR = 1
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def check_sweep(argv: Sequence[str]) -> tuple[str, int] | None:
    """(message, exit status) for the first job of a sweep whose config does not build, None when every
    one builds or when this is not a sweep of Hydra's basic sweeper on jaxsgd's own config (then each job
    is checked as it starts, as a single run is).

    Hydra composes a sweep's jobs one by one as it launches them, so a bad value in the tenth job would
    surface only after nine had run. Here every job's config is composed and built (`config.build`, no
    compute) first. Composing is slow (~0.2 s), so jobs that differ only in plain KEY=VALUE overrides
    share one composition and get their values set as Hydra sets them (OmegaConf.update, merge)."""
    parsed = _command_line(argv)
    if parsed is None:
        return None
    args, parser, overrides = parsed
    if args.cfg or args.config_dir or args.config_path or args.config_name:  # not jaxsgd's own config as is
        return None
    # without --multirun only a preset (experiment, a nested group) or hydra.mode makes a sweep: a single
    # run skips composing here (its job is checked as it starts)
    if not args.multirun and not any(o.key_or_group == "experiment" or "/" in o.key_or_group
                                     or o.key_or_group == "hydra.mode" for o in overrides):
        return None

    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()  # called where Hydra is already set up (a test, a notebook): set it back after
    GlobalHydra.instance().clear()
    try:
        return _check_jobs(args, parser, overrides)
    finally:
        restore_gh_from_backup(backup)


def _check_jobs(args, parser, overrides) -> tuple[str, int] | None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.types import OverrideType

    groups = set(options()) | {"experiment"}

    def plain(o) -> bool:  # KEY=VALUE on a key of the job's config: set after composing, as Hydra does
        key = o.key_or_group
        return o.type == OverrideType.CHANGE and o.package is None and key not in groups and "/" not in key

    def job_lines(lines):  # hydra's own keys do not change a job's config
        return [x for x in lines if not x.lstrip("+~").startswith("hydra")]

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
            head = compose("config", overrides=fixed, return_hydra_config=True)
            mode = head.hydra.mode
            multirun = args.multirun or getattr(mode, "name", str(mode)) == "MULTIRUN"
            if not multirun or head.hydra.sweeper.get("_target_") != _BASIC_SWEEPER:
                return None
            params = [f"{k}={v}" for k, v in (head.hydra.sweeper.get("params") or {}).items()]
            every = parser.parse_overrides(params + list(args.overrides))  # as the basic sweeper reads them
            jobs = [job for batch in BasicSweeper.split_arguments(every, None) for job in batch]
        except Exception:  # Hydra will say what is wrong with the sweep itself
            return None
        swept = {o.key_or_group for o in every if o.is_sweep_override()}
        composed: dict[tuple, DictConfig] = {}
        for n, job in enumerate(jobs):
            parsed = parser.parse_overrides(job_lines(job))
            structural = tuple(o.input_line for o in parsed if not plain(o))
            label = " ".join(o.input_line for o in parsed if o.key_or_group in swept)
            label = f"job {n} of the sweep ({label})" if label else f"job {n} of the sweep"
            try:
                if structural not in composed:
                    composed[structural] = compose("config", overrides=list(structural))
                cfg = copy.deepcopy(composed[structural])  # a shallow copy would share nested nodes
                try:
                    for o in parsed:
                        if plain(o):
                            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
                except Exception:  # anything unusual: compose the whole job, exactly as Hydra will
                    cfg = compose("config", overrides=[o.input_line for o in parsed])
                build(cfg)
            except ConfigError as exc:
                return f"{label}: {exc} No job was run.", USAGE_ERROR
            except Exception as exc:  # Hydra's own complaint (e.g. text for an integer), before any job runs
                cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
                return f"{label}: {exc}{cause}".replace("\n", " "), HYDRA_ERROR
    return None


def main() -> None:
    """Entry point of `python -m jaxsgd` and the `jaxsgd` console script."""
    problem = preflight(sys.argv[1:])
    if problem is not None:
        print(f"jaxsgd: {problem}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)
    checked = check_sweep(sys.argv[1:])
    if checked is not None:
        print(f"jaxsgd: {checked[0]}", file=sys.stderr)
        raise SystemExit(checked[1])
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()


__all__ = ["main", "task", "preflight", "check_sweep", "USAGE_ERROR"]
