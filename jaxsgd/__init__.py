"""jaxsgd: JAX-vectorised Monte Carlo experiments for distributed SGD with stragglers and stale gradients."""

from . import delays, lr, problems, theory
from .engine import simulate
from .errors import ConfigError
from .lr import Optimizer
from .results import Result
from .timeline import Timeline, from_compute_times, timeline
from .variants import NAMES as VARIANTS

__version__ = "0.1.0"

__all__ = [
    "delays",
    "lr",
    "problems",
    "theory",
    "simulate",
    "timeline",
    "from_compute_times",
    "Timeline",
    "Result",
    "Optimizer",
    "ConfigError",
    "VARIANTS",
    "__version__",
]
