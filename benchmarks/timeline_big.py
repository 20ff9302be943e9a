"""The 10,000 replicas x 10,000 updates timeline (P = 256, K = 1): wall time and peak resident memory.

Usage: python benchmarks/timeline_big.py [variant]   (default: async)
"""

import resource
import sys
import time

import jaxsgd
from jaxsgd.delays import Exponential


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "async"
    t0 = time.perf_counter()
    tl = jaxsgd.timeline(variant, P=256, K=None if variant in ("sync", "async") else 1, delay=Exponential(1.0),
                         updates=10_000, replicas=10_000, seed=0)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{variant}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB, E[T] {tl.time_per_update:.6g}, "
          f"staleness {tl.staleness_mean:.6g}, arrays {tl.time.shape} {tl.worker.shape}")


if __name__ == "__main__":
    main()
