#!/usr/bin/env bash
# Start GPU workers for bioxen-dask: one `dask cuda worker` process per visible GPU,
# with an RMM memory pool that CuPy allocates from.
#
# Usage:
#   deploy/gpu/dask-cuda-worker.sh tcp://SCHEDULER:8786
#   deploy/gpu/dask-cuda-worker.sh --scheduler-file /shared/scheduler.json
#
# Environment (all optional):
#   CUDA_VISIBLE_DEVICES   GPUs to use (default: all)           e.g. 0,1
#   RMM_POOL_SIZE          per-GPU RMM pool (default: 0.85)      fraction or "30GB";
#                          leave 200-500 MB of each GPU for the CUDA context
#   DEVICE_MEMORY_LIMIT    spill device->host above this (default: 0.8)
#   WORKER_LOCAL_DIR       spill directory (default: $TMPDIR or /tmp)
#   DASK_CUDA_PROTOCOL     tcp (default) or ucx (NVLink/InfiniBand; needs UCX)
#
# Requires the GPU stack: pip install 'bioxen-dask[gpu]' (or the image built with
# `--build-arg WITH_GPU=1`).  Workers advertise the resource GPU=1, so GPU-only work can
# be pinned to them (dask.annotate(resources={"GPU": 1})); note that graph fusion can
# drop annotations (dask#7036), so keep GPU work on a GPU-only cluster or worker group.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 tcp://SCHEDULER:8786 | --scheduler-file PATH [extra dask cuda worker args]" >&2
    exit 2
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "error: no NVIDIA GPU visible (nvidia-smi failed); refusing to start CPU-only workers" >&2
    exit 1
fi
if ! python -c "import cupy, dask_cuda; assert cupy.cuda.runtime.getDeviceCount() > 0" 2>/dev/null; then
    echo "error: CuPy/dask-cuda missing or no CUDA device; pip install 'bioxen-dask[gpu]'" >&2
    exit 1
fi

exec dask cuda worker "$@" \
    --nthreads 1 \
    --rmm-pool-size "${RMM_POOL_SIZE:-0.85}" \
    --set-rmm-allocator-for-libs cupy \
    --device-memory-limit "${DEVICE_MEMORY_LIMIT:-0.8}" \
    --resources "GPU=1" \
    --protocol "${DASK_CUDA_PROTOCOL:-tcp}" \
    --local-directory "${WORKER_LOCAL_DIR:-${TMPDIR:-/tmp}}"
