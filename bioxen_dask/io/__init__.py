"""Reading calcium-imaging traces and writing/reading the signals store.

The signals store is a Zarr v3 group (``signals``: roi × time float32, coordinates
``roi``/``time``, optional ``references``, attributes ``fs``, ``units``, ``source``,
``preprocessing``...). :func:`ingest` builds one from suite2p, NWB, CaImAn, npy,
HDF5 or Zarr sources; :func:`write_synthetic` builds one from synthetic data with
planted ground truth; :func:`open_signals` opens it lazily for the pipeline.
"""

from ._dff import dff
from ._ingest import FORMATS, detect_format, ingest
from ._store import (
    CorruptStoreError,
    IncompleteStoreError,
    SignalsWriter,
    StoreExistsError,
    fingerprint,
    open_signals,
    open_signals_store,
    store_info,
    verify_store,
    write_signals,
)
from ._synth import DEFAULT_GROUPS, DEFAULT_NETWORKS, PlantedGroup, synthesize, synthesize_networks, write_synthetic

__all__ = [
    "CorruptStoreError",
    "DEFAULT_GROUPS",
    "DEFAULT_NETWORKS",
    "FORMATS",
    "IncompleteStoreError",
    "PlantedGroup",
    "SignalsWriter",
    "StoreExistsError",
    "detect_format",
    "dff",
    "fingerprint",
    "ingest",
    "open_signals",
    "open_signals_store",
    "store_info",
    "synthesize",
    "synthesize_networks",
    "verify_store",
    "write_signals",
    "write_synthetic",
]
