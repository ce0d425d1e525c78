#!/usr/bin/env bash
# The GPU checks of bioxen-dask in one go, on a machine with an NVIDIA GPU:
#   1. installs the `gpu` extra (CuPy, dask-cuda, RMM) unless it is importable already,
#   2. runs every gpu-marked test (CuPy == NumPy for the transform, coherence and the
#      significance histograms; filter banks on the device; `--cluster cuda` == CPU run;
#      the LocalCUDACluster test) -- a skip here means the GPU stack is broken: it fails,
#   3. runs the CPU vs GPU benchmark and writes its CSV, figure and Markdown summary.
#
#   deploy/gpu/check-gpu.sh [OUT_DIR]        # default gpu-check/ in the repository root
#   QUICK=1 deploy/gpu/check-gpu.sh          # tiny benchmark sizes (a smoke run, seconds)
#   PYTHON=/path/to/python deploy/gpu/check-gpu.sh
#   PIP_FIND_LINKS=wheels/ PIP_NO_INDEX=1 deploy/gpu/check-gpu.sh   # offline, from local wheels
#
# Outputs in OUT_DIR: nvidia-smi.txt, pytest-gpu.txt, gpu.csv (break-even in its '# note:'
# lines), gpu.png, gpu.md (paste into docs/benchmarks with the device name and date it names).
set -euo pipefail
OUT="${1:-}"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"    # relative to where it was called from
fi
PY="${PYTHON:-}"
if [ -n "$PY" ]; then
    # PYTHON=python3 (a command name) as well as PYTHON=/path/to/python; never replaced silently
    PY="$(command -v "$PY" 2>/dev/null)" || { echo "check-gpu: PYTHON=$PYTHON is not an executable" >&2; exit 2; }
fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT="${OUT:-gpu-check}"
PY="${PY:-.venv/bin/python}"
QUICK="${QUICK:-0}"
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >"$OUT/nvidia-smi.txt" 2>&1; then
    echo "check-gpu: nvidia-smi finds no NVIDIA GPU here; run this on a GPU machine." >&2
    exit 2
fi
cat "$OUT/nvidia-smi.txt"
if [ ! -x "$PY" ]; then
    python3 -m venv .venv
    PY=.venv/bin/python
    "$PY" -m pip install -q -e '.[test]'
fi
if ! "$PY" -c "import cupy, dask_cuda, rmm" >/dev/null 2>&1; then
    "$PY" -m pip install -q -e '.[gpu]' || {
        echo "check-gpu: could not install the gpu extra (cupy-cuda12x, dask-cuda, rmm-cu12); without" \
             "network access, point PIP_FIND_LINKS at downloaded wheels." >&2
        exit 3
    }
fi
"$PY" -c "import cupy; cupy.cuda.runtime.getDeviceCount(); print('CuPy', cupy.__version__, 'on',
cupy.cuda.runtime.getDeviceProperties(0)['name'])"

# -m gpu selects the GPU tests only; any skip among them is a failure on a GPU machine.
set +e
"$PY" -m pytest -m gpu tests/gpu tests/test_cluster.py -ra -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt"
status=${PIPESTATUS[0]}
set -e
if grep -q "^SKIPPED" "$OUT/pytest-gpu.txt"; then
    echo "check-gpu: GPU tests were skipped on a GPU machine (see $OUT/pytest-gpu.txt)." >&2
    status=1
fi

"$PY" - "$OUT" "$QUICK" <<'PYEOF'
import sys
from pathlib import Path

from bioxen_dask.bench import gpu

out, quick = Path(sys.argv[1]), sys.argv[2] not in ("", "0")
csv = gpu.run(out, quick=quick)
(out / "gpu.md").write_text(gpu.summary_markdown(csv))
print((out / "gpu.md").read_text())
print(f"wrote {csv}, {csv.with_suffix('.png')}, {out / 'gpu.md'}")
PYEOF
exit "$status"
