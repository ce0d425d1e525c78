"""Lazy block readers: the one abstraction every writer and ingester streams through.

A *block reader* is a callable ``read(rows, times) -> ndarray`` returning the
``(roi, time)`` block selected by two slices, so that sources of any kind (NumPy
memmaps, h5py/zarr datasets, computed traces such as ``F - c*Fneu``) can be
written chunk by chunk without ever being held in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: ``read(rows, times)`` -> the ``(len(rows), len(times))`` block of a source.
BlockReader = Callable[[slice, slice], np.ndarray]


def row_selection(row_index: np.ndarray | None, rows: slice) -> slice | np.ndarray:
    """Source rows for the output rows ``rows`` (a slice when contiguous)."""
    if row_index is None:
        return rows
    idx = row_index[rows]
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def take(arr: Any, first: slice | np.ndarray, second: slice | np.ndarray) -> np.ndarray:
    """``arr[first, second]`` for NumPy, memmap, h5py, zarr and dask arrays.

    Integer selections must be increasing (h5py's rule); zarr arrays use
    orthogonal indexing, dask arrays are computed.
    """
    if hasattr(arr, "oindex"):  # zarr.Array: plain [] is not orthogonal
        out = arr.oindex[first, second]
    else:
        out = arr[first, second]
    if hasattr(out, "compute"):  # dask
        out = out.compute()
    return np.asarray(out)


def array_reader(
    arr: Any,
    *,
    row_index: np.ndarray | None = None,
    time_major: bool = False,
) -> BlockReader:
    """Block reader over a 2-D array-like.

    Parameters
    ----------
    arr
        Anything sliceable with ``shape``: ndarray, memmap, h5py/zarr dataset, dask array.
    row_index
        Increasing source row (roi) indices to keep, e.g. the cells of a suite2p plane.
    time_major
        True if ``arr`` is stored ``(time, roi)`` (NWB); blocks are returned ``(roi, time)``.
    """

    def read(rows: slice, times: slice) -> np.ndarray:
        sel = row_selection(row_index, rows)
        if time_major:
            return take(arr, times, sel).T
        return take(arr, sel, times)

    return read


def first_nonfinite(block: np.ndarray) -> tuple[int, int, int] | None:
    """``(row, column, count)`` of the first non-finite value in ``block``, or None."""
    bad = ~np.isfinite(block)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    return int(row), int(col), int(bad.sum())
