"""jaxsgd: JAX-vectorised Monte Carlo experiments for distributed SGD with stragglers and stale gradients."""

from . import delays, theory
from .errors import ConfigError
from .timeline import Timeline, from_compute_times, timeline
from .variants import NAMES as VARIANTS

__version__ = "0.1.0"

__all__ = ["delays", "theory", "timeline", "from_compute_times", "Timeline", "ConfigError", "VARIANTS", "__version__"]
