"""An independent, plain-Python event simulation of the four variants of SPEC §2.

Written from SPEC.md's text (not from jaxsgd.timeline) to check the JAX timeline event for event.

Compute times come from a pre-drawn table: ``table[i][n]`` is the time of worker i's n-th *started*
job, counting jobs that are later cancelled (the convention of jaxsgd.timeline). Events are kept in a
heap keyed by ``(finish time, worker)``, so ties in finishing times go to the lower worker index.

Each function returns one ``(time, workers, staleness)`` triple per update: the time the update is
applied, the K workers whose gradients it uses in arrival order, and their staleness ``j - tau``.

``dtype`` is the arithmetic of the clock: ``float`` (exact for tables of small dyadic rationals) or
``numpy.float32`` to reproduce a float32 engine bit for bit (one rounding per ``start + duration``).
"""

from __future__ import annotations

import heapq

import numpy as np

__all__ = ["k_sync", "k_batch_sync", "k_async", "k_batch_async", "SIMULATORS", "simulate", "draws_used"]


class _Jobs:
    """Hands out each worker's next pre-drawn compute time, counting draws per worker."""

    def __init__(self, table, P: int, dtype):
        self.table = table
        self.used = [0] * P
        self.dtype = dtype

    def start(self, worker: int, now):
        """Worker `worker` starts a job at `now`: returns its finishing time."""
        n = self.used[worker]
        if n >= len(self.table[worker]):
            raise IndexError(f"worker {worker} needs job {n} but the table holds {len(self.table[worker])}")
        self.used[worker] += 1
        return self.dtype(self.dtype(now) + self.dtype(self.table[worker][n]))


def k_sync(table, P: int, K: int, updates: int, dtype=float):
    """K-sync SGD: all P workers start on w_j at t_j; the update uses the first K to finish; the rest
    are cancelled and everybody restarts at the update time."""
    jobs = _Jobs(table, P, dtype)
    now = dtype(0.0)
    out = []
    for _ in range(updates):
        heap = [(jobs.start(i, now), i) for i in range(P)]
        heapq.heapify(heap)
        arrivals = [heapq.heappop(heap) for _ in range(K)]
        now = arrivals[-1][0]
        out.append((float(now), [i for _, i in arrivals], [0] * K))
    return out


def k_batch_sync(table, P: int, K: int, updates: int, dtype=float):
    """K-batch-sync SGD: all P start on w_j; every finisher pushes and at once starts another gradient on
    the same w_j, until K gradients are in; the K-th triggers the update (in-flight work is cancelled)."""
    jobs = _Jobs(table, P, dtype)
    now = dtype(0.0)
    out = []
    for _ in range(updates):
        heap = [(jobs.start(i, now), i) for i in range(P)]
        heapq.heapify(heap)
        workers = []
        while True:
            finish, i = heapq.heappop(heap)
            workers.append(i)
            if len(workers) == K:
                now = finish
                break
            heapq.heappush(heap, (jobs.start(i, finish), i))
        out.append((float(now), workers, [0] * K))
    return out


def k_async(table, P: int, K: int, updates: int, dtype=float):
    """K-async SGD: every worker starts on w_0 at time 0; a worker that pushes waits idle; once K
    distinct workers have pushed the update is applied and those K restart on the new model; the
    others keep computing on their old version."""
    jobs = _Jobs(table, P, dtype)
    version = [0] * P
    heap = [(jobs.start(i, 0.0), i) for i in range(P)]
    heapq.heapify(heap)
    j = 0
    pushed: list[tuple[int, int]] = []
    out = []
    while j < updates:
        finish, i = heapq.heappop(heap)
        pushed.append((i, j - version[i]))  # i now waits idle (it is not in the heap)
        if len(pushed) == K:
            out.append((float(finish), [w for w, _ in pushed], [s for _, s in pushed]))
            j += 1
            for w, _ in pushed:
                version[w] = j
                heapq.heappush(heap, (jobs.start(w, finish), w))
            pushed = []
    return out


def k_batch_async(table, P: int, K: int, updates: int, dtype=float):
    """K-batch-async SGD: every worker starts on w_0 at time 0; any K pushes make an update; a pusher
    immediately pulls the current model (w_{j+1} if its push was the K-th, else w_j) and restarts."""
    jobs = _Jobs(table, P, dtype)
    version = [0] * P
    heap = [(jobs.start(i, 0.0), i) for i in range(P)]
    heapq.heapify(heap)
    j = 0
    workers: list[int] = []
    stale: list[int] = []
    out = []
    while j < updates:
        finish, i = heapq.heappop(heap)
        workers.append(i)
        stale.append(j - version[i])
        if len(workers) == K:
            out.append((float(finish), workers, stale))
            j += 1
            workers, stale = [], []
        version[i] = j  # the model it pulls now
        heapq.heappush(heap, (jobs.start(i, finish), i))
    return out


SIMULATORS = {"k_sync": k_sync, "k_batch_sync": k_batch_sync, "k_async": k_async, "k_batch_async": k_batch_async}


def simulate(variant: str, table, P: int, K: int, updates: int, dtype=float):
    """Run one replica of `variant` ('sync' and 'async' are the SPEC aliases) on `table` (P, jobs).

    Returns arrays: time (updates,), worker (updates, K), staleness (updates, K)."""
    if variant == "sync":
        variant, K = "k_sync", P
    elif variant == "async":
        variant, K = "k_batch_async", 1
    events = SIMULATORS[variant](table, P, K, updates, dtype)
    time = np.array([e[0] for e in events], dtype=np.float64)
    worker = np.array([e[1] for e in events], dtype=np.int64).reshape(updates, K)
    staleness = np.array([e[2] for e in events], dtype=np.int64).reshape(updates, K)
    return time, worker, staleness


class _CountingRow:
    """A table row that remembers how many of its entries were read (reads are in order)."""

    def __init__(self, row):
        self.row = row
        self.read = 0

    def __len__(self):
        return len(self.row)

    def __getitem__(self, n):
        self.read = max(self.read, n + 1)
        return self.row[n]


def draws_used(variant: str, table, P: int, K: int, updates: int) -> list[int]:
    """How many jobs each worker starts (cancelled ones and those started after the last update
    included) when `variant` runs for `updates` updates on `table`: the table length it needs."""
    rows = [_CountingRow(table[i]) for i in range(P)]
    simulate(variant, rows, P, K, updates)
    return [r.read for r in rows]
