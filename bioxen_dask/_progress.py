"""Progress of long work, on a cluster or locally, and the active client: the one piece of the
cluster layer the library itself uses (it never starts a cluster)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dask

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["LOG_PROGRESS_INTERVAL", "active_client", "bar_options", "cluster_progress", "progress"]


def active_client(client: Client | None = None) -> Client | None:
    """``client`` if given, else the active default ``distributed`` client, else ``None``.

    The one place that answers "is there a cluster to run on?" (the library never creates a
    client itself).
    """
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


#: Seconds between the lines a progress bar writes when stderr is not a terminal (a log file):
#: a line now and then, not a redraw every 0.1 s.
LOG_PROGRESS_INTERVAL = 30.0


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def bar_options() -> dict[str, Any]:
    """tqdm keyword arguments for every progress bar of the package: on stderr (stdout carries
    only machine-readable output), redrawn every 0.1 s on a terminal, else a line every
    :data:`LOG_PROGRESS_INTERVAL` seconds."""
    if _stderr_is_terminal():
        return {"file": sys.stderr, "mininterval": 0.1}
    return {"file": sys.stderr, "mininterval": LOG_PROGRESS_INTERVAL, "ascii": True}


def cluster_progress(futures: Any) -> None:
    """``distributed.progress`` of ``futures``, but its text bar on stderr.

    In a notebook: distributed's widget (returns at once). In a terminal: a bar redrawn on
    stderr, blocking until done (distributed's own bar writes to stdout, which would corrupt
    ``bioxen-dask run > summary.json``). Elsewhere (a log file): one line at the start, one
    every :data:`LOG_PROGRESS_INTERVAL` seconds and one at the end.
    """
    import distributed
    from distributed.diagnostics.progressbar import TextProgressBar
    from dask.utils import format_time
    from distributed.utils import is_kernel

    if is_kernel():
        distributed.progress(futures)
        return
    terminal = _stderr_is_terminal()

    class _StderrBar(TextProgressBar):
        _last: float | None = None  # elapsed time of the last line written (log files)

        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
            if not terminal:  # the scheduler is polled every 0.1 s; a line is written far less often
                if remaining and self._last is not None and self.elapsed - self._last < LOG_PROGRESS_INTERVAL:
                    return
                if not remaining and self._last == -1.0:
                    return  # the final line is written once
                self._last = self.elapsed if remaining else -1.0
            frac = (1 - remaining / all) if all else 1.0
            bar = "#" * int(self.width * frac)
            msg = f"[{bar:<{self.width}}] | {int(100 * frac)}% Completed | {format_time(self.elapsed)}"
            with contextlib.suppress(ValueError):
                sys.stderr.write(f"\r{msg}" if terminal else f"{msg}\n")
                sys.stderr.flush()

        def _draw_stop(self, **kwargs: Any) -> None:
            if terminal:
                with contextlib.suppress(ValueError):
                    sys.stderr.write("\n")
                    sys.stderr.flush()

    _StderrBar(distributed.client.futures_of(futures))


def progress(
    work: Any,
    client: Client | None = None,
    *,
    desc: str | None = None,
    disable: bool = False,
) -> Any:
    """Show progress for long work, on a cluster or locally; one helper for both.

    ``dask.diagnostics.ProgressBar`` and tqdm's dask callback only see the local
    schedulers, and ``distributed.progress`` only sees a cluster; this picks the
    right one. Bars go to stderr (:func:`bar_options`, :func:`cluster_progress`), a line
    every :data:`LOG_PROGRESS_INTERVAL` seconds when stderr is not a terminal.

    * **Dask collection(s)** (array, dataset, delayed; or a list/tuple/dict of
      them): with a distributed client (``client`` or the default one) they are
      persisted on the cluster and ``distributed.progress`` is shown (a widget
      in notebooks, a text bar that blocks until done in a terminal); without
      one, they are persisted by the local scheduler under a tqdm bar.  Either
      way the persisted collection(s) come back: call ``.compute()`` or write
      them out next.
    * **Futures** (one or an iterable): ``distributed.progress`` is shown and the
      futures come back.
    * **Any other iterable**: wrapped in ``tqdm`` and returned (iterate it).

    Parameters
    ----------
    work : dask collection(s), future(s) or iterable
    client : distributed.Client, optional
        Defaults to the current default client, if any.
    desc : str, optional
        Label for the tqdm bar.
    disable : bool, default False
        Compute/persist without showing anything.

    Returns
    -------
    Persisted collection(s) (same structure), the futures, or a tqdm iterator.

    Examples
    --------
    >>> import dask.array as da
    >>> x = progress(da.ones(10, chunks=5) * 2, disable=True)
    >>> float(x.sum().compute())
    20.0
    >>> [i * i for i in progress(range(3), disable=True)]
    [0, 1, 4]
    """
    from dask import is_dask_collection

    try:
        from distributed import Future
    except ImportError:  # pragma: no cover
        Future = ()  # type: ignore[assignment,misc]

    def is_collection(obj: Any) -> bool:
        if is_dask_collection(obj):
            return True
        if isinstance(obj, Mapping):
            return bool(obj) and all(is_dask_collection(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return bool(obj) and all(is_dask_collection(v) for v in obj)
        return False

    def is_futures(obj: Any) -> bool:
        if isinstance(obj, Future):
            return True
        if isinstance(obj, Mapping):
            return bool(obj) and all(isinstance(v, Future) for v in obj.values())
        if isinstance(obj, (list, tuple, set)):
            return bool(obj) and all(isinstance(v, Future) for v in obj)
        return False

    if is_futures(work):
        if not disable:
            import distributed

            futures = list(work.values()) if isinstance(work, Mapping) else work
            cluster_progress(futures)
        return work

    if is_collection(work):
        active = active_client(client)
        if active is not None:
            persisted = active.persist(work)
            if not disable:
                parts = (
                    list(persisted.values())
                    if isinstance(persisted, Mapping)
                    else persisted
                )
                cluster_progress(parts)
            return persisted

        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc, disable=disable, **bar_options()):
            if isinstance(work, Mapping):
                keys = list(work)
                return dict(zip(keys, dask.persist(*[work[k] for k in keys]), strict=True))
            if isinstance(work, (list, tuple)):
                values = dask.persist(*work)
                return type(work)(values)
            (result,) = dask.persist(work)
            return result

    if isinstance(work, Iterable):
        from tqdm.auto import tqdm

        return tqdm(work, desc=desc, disable=disable, **bar_options())

    raise TypeError(
        f"progress() takes dask collections, distributed futures or an iterable; "
        f"got {type(work).__name__}"
    )
