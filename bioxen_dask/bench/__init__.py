"""The benchmark harness: bioxen-dask side by side with pycwt, PyWavelets, ssqueezepy and fCWT.

Each benchmark runs its candidates in one process on one machine, writes a CSV whose header
records that machine (:func:`machine_info`), and the report (:mod:`bioxen_dask.bench.report`)
turns the CSVs into figures and ``docs/performance.md``. Run them with ``bioxen-dask bench``.
Nothing here is imported by the package itself.
"""

from ._harness import Measurement, machine_info, machine_label, measure, read_csv, write_csv

__all__ = ["Measurement", "machine_info", "machine_label", "measure", "read_csv", "write_csv"]
