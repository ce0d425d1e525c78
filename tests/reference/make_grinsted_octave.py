"""Regenerate ``grinsted_octave.npz``: Grinsted's toolbox, run in GNU Octave, on series on
different spans (and on equal spans).

Usage (see ``README.md`` here)::

    python tests/reference/make_grinsted_octave.py --toolbox /path/to/wavelet-coherence
    python tests/reference/make_grinsted_octave.py --compare   # our preset vs the stored outputs

The toolbox (``grinsted/wavelet-coherence``: ``wtc.m``, ``xwt.m``, ``wtcsignif.m``,
``formatts.m``, ``smoothwavelet.m``, ``ar1nv.m`` and ``private/``) is not part of this
repository; only ``private/parseArgs.m``'s MATLAB version probe needs a patch for Octave
(``ver('MATLAB')`` is empty there: set ``matlabver = 7`` when ``OCTAVE_VERSION`` exists).
The driver is ``grinsted_octave.m``. :func:`run_toolbox` is also what the live test calls.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "grinsted_octave.m"
OUTPUT = HERE / "grinsted_octave.npz"
#: Outputs stored per case (``<case>_<field>``).
FIELDS = ("Rsq", "phase", "period", "scale", "coi", "t")


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The inputs: ``name -> (x, y)`` as ``(t, value)`` two-column arrays.

    - ``ao_baltic_spans``: the toolbox's own example, AO 1851-1997 against Baltic ice
      1720-1999 on their different spans.
    - ``ao_baltic_equal``: both cut to 1851-1997 first.
    - ``offset_quarter``: dt = 0.25 (a fractional step), x from 1900.0 (200 samples), y from
      1934.0 (150 samples): a partial overlap of 64 samples, AR(1) noise plus a shared sine.
    """
    from importlib.resources import files

    sample = files("pycwt.sample")
    ao = np.loadtxt(sample / "jao.dat")
    baltic = np.loadtxt(sample / "jbaltic.dat")
    both = (baltic[:, 0] >= ao[0, 0]) & (baltic[:, 0] <= ao[-1, 0])
    rng = np.random.default_rng(2112)
    tx = 1900.0 + 0.25 * np.arange(200)
    ty = 1934.0 + 0.25 * np.arange(150)

    def series(t: np.ndarray, lag: float) -> np.ndarray:
        noise = np.zeros(t.size)
        e = rng.standard_normal(t.size)
        for i in range(t.size):
            noise[i] = 0.6 * noise[i - 1] + e[i] if i else e[i]
        return np.sin(2 * np.pi * (t - lag) / 3.0) + 0.8 * noise

    return {
        "ao_baltic_spans": (ao, baltic),
        "ao_baltic_equal": (ao, baltic[both]),
        "offset_quarter": (np.c_[tx, series(tx, 0.0)], np.c_[ty, series(ty, 0.4)]),
    }


def run_toolbox(toolbox: str | Path, inputs: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                octave: str = "octave", timeout: float = 600) -> dict[str, np.ndarray]:
    """Run the toolbox's ``wtc``/``xwt`` on ``inputs`` (default :func:`cases`) in Octave.

    Returns ``{"<case>_<field>": array}`` for every case and :data:`FIELDS`, plus
    ``"<case>_x"``/``"<case>_y"`` (the inputs) and ``octave_version``.
    """
    from scipy.io import loadmat

    toolbox = Path(toolbox)
    if not (toolbox / "wtc.m").is_file():
        raise FileNotFoundError(f"{toolbox} holds no wtc.m: pass the folder of Grinsted's toolbox.")
    inputs = cases() if inputs is None else inputs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cases.txt").write_text("\n".join(inputs) + "\n")
        for name, (x, y) in inputs.items():
            np.savetxt(tmp / f"{name}_x.txt", x, fmt="%.17g")
            np.savetxt(tmp / f"{name}_y.txt", y, fmt="%.17g")
        subprocess.run([octave, "--no-gui", "--no-window-system", "-q", str(DRIVER), str(toolbox), str(tmp),
                        str(tmp / "out.mat")], check=True, timeout=timeout, cwd=tmp, capture_output=True)
        mat = loadmat(tmp / "out.mat", squeeze_me=True)
    out: dict[str, np.ndarray] = {"octave_version": np.array(str(mat["octave_version"]))}
    for name, (x, y) in inputs.items():
        out[f"{name}_x"], out[f"{name}_y"] = np.asarray(x, float), np.asarray(y, float)
        for field in FIELDS:
            out[f"{name}_{field}"] = np.atleast_1d(np.asarray(mat[f"{name}_{field}"], dtype=float))
    return out


def compare(path: str | Path = OUTPUT) -> dict[str, dict[str, float]]:
    """The largest differences of bioxen-dask's ``grinsted`` preset (float64) from the stored
    toolbox outputs, per case (coherence against the toolbox's ``Rsq`` clipped to [0, 1];
    phase where ``|Wxy|`` exceeds 1e-6 of its largest value)."""
    from bioxen_dask import wavelet_coherence

    out = {}
    with np.load(path) as ref:
        for name in cases():
            ds = wavelet_coherence(ref[f"{name}_x"], ref[f"{name}_y"], preset="grinsted", dtype="float64")
            strong = ds.cross_power.values > 1e-6 * ds.cross_power.values.max()
            dphi = np.angle(np.exp(1j * (ds.phase.values - ref[f"{name}_phase"])))
            out[name] = {
                "coherence": float(np.abs(ds.coherence.values - np.clip(ref[f"{name}_Rsq"], 0, 1)).max()),
                "phase": float(np.abs(dphi[strong]).max()),
                "coi": float(np.abs(ds.coi.values - ref[f"{name}_coi"]).max()),
                "period_rel": float(np.abs(ds.period.values / ref[f"{name}_period"] - 1).max()),
                "toolbox_rsq_max": float(ref[f"{name}_Rsq"].max()),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toolbox", help="folder of Grinsted's wavelet-coherence toolbox (regenerate)")
    ap.add_argument("--octave", default=shutil.which("octave") or "octave", help="the octave executable")
    ap.add_argument("--out", default=str(OUTPUT), help=f"output .npz (default {OUTPUT.name} here)")
    ap.add_argument("--compare", action="store_true",
                    help="print the grinsted preset's largest differences from the stored outputs (no Octave)")
    args = ap.parse_args(argv)
    if args.compare:
        import json

        print(json.dumps(compare(args.out), indent=2))
        return 0
    if not args.toolbox:
        ap.error("--toolbox is required to regenerate (or pass --compare)")
    result = run_toolbox(args.toolbox, octave=args.octave)
    np.savez_compressed(args.out, **result)
    print(f"wrote {args.out} (Octave {result['octave_version']}): {', '.join(cases())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
