"""The Hydra application behind `python -m jaxsgd` and the `jaxsgd` command: one job per run; --multirun
sweeps any keys, and the GatherSweep callback gathers the jobs. Bad input exits with status 2 and one line.

The task function lives here, in an importable module, so that launchers running jobs in other processes
(joblib, submitit) can pickle it by reference."""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import app
from .config import CONF_DIR, build, runtime
from .errors import ConfigError

log = logging.getLogger("jaxsgd")


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
        raise SystemExit(2) from None


def main() -> None:
    """Entry point of `python -m jaxsgd` and the `jaxsgd` console script."""
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()

