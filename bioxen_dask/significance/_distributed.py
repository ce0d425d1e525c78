"""The distributed Monte Carlo stage: batch tasks, a tree of exact merges, progress.

The library never creates a Dask client. A run becomes a :mod:`dask.delayed` graph:

    spec ──► batch 0 ─┐
         ──► batch 1 ─┼─► merge ─┐
         ──►   ...   ─┘          ├─► merge (root)
         ──► batch k ─► merge ───┘

computed on the ``distributed.Client`` passed as ``scheduler`` (or the active default
client), or else on Dask's local scheduler (``scheduler=None`` means Dask's default,
``"threads"``, ``"sync"``, ``"processes"`` as for :func:`dask.compute`). Progress uses
``distributed.progress`` on a client and a tqdm bar otherwise.

Several runs (e.g. one per AR(1) bucket pair) go into one graph, so all their batches run
concurrently.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from typing import Any, Sequence

import dask
from dask.callbacks import Callback

from ._montecarlo import MonteCarloSpec, Partial, merge_partials

__all__ = ["default_batch_size", "run_specs"]

#: Partials merged per tree node.
SPLIT_EVERY = 8


def default_batch_size(spec: MonteCarloSpec, mc_count: int) -> int:
    """Surrogate pairs per task: about 16 tasks per run, within the per-task memory budget."""
    from ._montecarlo import TASK_MEMORY_BUDGET

    b = max(1, math.ceil(mc_count / 16))
    b = min(b, 64)
    while b > 1 and spec.memory_per_task(b) > TASK_MEMORY_BUDGET:
        b //= 2
    return b


def _run_batch(spec: MonteCarloSpec, start: int, stop: int) -> Partial:
    return spec.run(start, stop)


def _graph(spec: MonteCarloSpec, mc_count: int, batch_size: int, token: str):
    spec_node = dask.delayed(spec, name=f"mcspec-{token}", traverse=False)
    run = dask.delayed(_run_batch, pure=True)
    merge = dask.delayed(merge_partials, pure=True)
    parts = [run(spec_node, i0, min(i0 + batch_size, mc_count), dask_key_name=(f"mcbatch-{token}", k))
             for k, i0 in enumerate(range(0, mc_count, batch_size))]
    level = 0
    while len(parts) > 1:
        parts = [merge(*parts[i : i + SPLIT_EVERY], dask_key_name=(f"mcmerge-{token}", level, i))
                 for i in range(0, len(parts), SPLIT_EVERY)]
        level += 1
    return parts[0], math.ceil(mc_count / batch_size)


def _as_client(scheduler: Any):
    """The distributed client to use, or None for a local Dask scheduler."""
    if scheduler is not None:
        return scheduler if hasattr(scheduler, "submit") and hasattr(scheduler, "gather") else None
    from .._progress import active_client

    return active_client()


class _TqdmCallback(Callback):
    """tqdm bar over the batch tasks of a local Dask computation."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self._total, self._desc, self._bar = total, desc, None

    def _start(self, dsk):
        from tqdm.auto import tqdm

        from .._progress import bar_options

        self._bar = tqdm(total=self._total, desc=self._desc, unit="batch", **bar_options())

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(key, tuple) and str(key[0]).startswith("mcbatch-"):
            self._bar.update(1)

    def _finish(self, dsk, state, errored):
        if self._bar is not None:
            self._bar.close()


def run_specs(
    jobs: Sequence[tuple[MonteCarloSpec, int, int]],
    *,
    scheduler: Any = None,
    progress: bool = False,
    desc: str = "coherence significance",
) -> list[Partial]:
    """Run Monte Carlo jobs ``(spec, mc_count, batch_size)`` in one Dask graph.

    Returns
    -------
    list of Partial
        One merged partial per job, in order.
    """
    if not jobs:
        return []
    roots, n_batches = [], 0
    for spec, mc_count, batch_size in jobs:
        root, nb = _graph(spec, int(mc_count), int(batch_size), uuid.uuid4().hex[:12])
        roots.append(root)
        n_batches += nb
    client = _as_client(scheduler)
    if client is not None:
        futures = client.compute(roots)
        if progress:
            from .._progress import cluster_progress

            cluster_progress(futures)
        return list(client.gather(futures))
    with contextlib.ExitStack() as stack:
        if progress:
            stack.enter_context(_TqdmCallback(n_batches, desc))
        kw = {} if scheduler is None else {"scheduler": scheduler}
        return list(dask.compute(*roots, **kw))
