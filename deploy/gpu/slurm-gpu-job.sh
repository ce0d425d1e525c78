#!/usr/bin/env bash
# A whole bioxen-dask run inside one SLURM allocation of GPU nodes ("batch runner" style):
# a Dask scheduler on the first node, one `dask cuda worker` per GPU on every node, and
# the pipeline connecting to that scheduler.  Nothing outlives the job.
#
#   sbatch -A <account> -p <gpu-partition> deploy/gpu/slurm-gpu-job.sh pipelines/<pipeline>.yaml
#
# Submit from the repository root (or set BIOXEN_GPU_DIR to this folder): sbatch runs a copy
# of this file, so it finds dask-cuda-worker.sh through the submit directory.
#
#SBATCH -J bioxen-dask-gpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=0
#SBATCH -t 04:00:00
#SBATCH -o bioxen-dask-gpu-%j.out
set -euo pipefail

PIPELINE=${1:?usage: sbatch deploy/gpu/slurm-gpu-job.sh PIPELINE.yaml}
GPUS_PER_NODE=${SLURM_GPUS_PER_NODE:-4}
GPUS_PER_NODE=${GPUS_PER_NODE##*:}          # "a100:4" -> "4"
RUN_DIR=${SLURM_SUBMIT_DIR:-$PWD}/dask-${SLURM_JOB_ID:-local}
SCHEDULER_FILE=$RUN_DIR/scheduler.json
# sbatch runs a *copy* of this script from slurmd's spool directory, so its own location
# says nothing about the checkout: dask-cuda-worker.sh is looked up in BIOXEN_GPU_DIR, next
# to this file (run by hand), then under the submit directory (submitted from the repo root).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for dir in "${BIOXEN_GPU_DIR:-}" "$HERE" "${SLURM_SUBMIT_DIR:-$PWD}/deploy/gpu"; do
    if [[ -n $dir && -x $dir/dask-cuda-worker.sh ]]; then HERE=$dir; break; fi
done
if [[ ! -x $HERE/dask-cuda-worker.sh ]]; then
    echo "slurm-gpu-job: dask-cuda-worker.sh not found; submit from the repository root or set" \
         "BIOXEN_GPU_DIR=/path/to/bioxen-dask/deploy/gpu" >&2
    exit 1
fi
mkdir -p "$RUN_DIR"

# module load cuda/12 python/3.11 ; source ~/venvs/bioxen-dask/bin/activate

# Scheduler on this (the first) node; its dashboard stays on loopback: reach it with
#   ssh -L 8787:127.0.0.1:8787 <first node>
dask scheduler --scheduler-file "$SCHEDULER_FILE" --dashboard-address 127.0.0.1:8787 \
    >"$RUN_DIR/scheduler.log" 2>&1 &
SCHEDULER_PID=$!
trap 'kill "$SCHEDULER_PID" 2>/dev/null || true' EXIT
until [[ -s $SCHEDULER_FILE ]]; do
    if ! kill -0 "$SCHEDULER_PID" 2>/dev/null; then
        echo "slurm-gpu-job: the scheduler exited before writing $SCHEDULER_FILE:" >&2
        tail -n 20 "$RUN_DIR/scheduler.log" >&2
        exit 1
    fi
    sleep 1
done

# One task per node; each starts one worker per GPU of its node (RMM pool, CuPy on RMM).
srun --ntasks-per-node=1 --kill-on-bad-exit=0 \
    "$HERE/dask-cuda-worker.sh" --scheduler-file "$SCHEDULER_FILE" \
    >"$RUN_DIR/workers.log" 2>&1 &

N_WORKERS=$(( ${SLURM_JOB_NUM_NODES:-1} * GPUS_PER_NODE ))
export DASK_SCHEDULER_ADDRESS
DASK_SCHEDULER_ADDRESS=$(python - "$SCHEDULER_FILE" "$N_WORKERS" <<'PY'
import json, sys
from distributed import Client
path, n = sys.argv[1], int(sys.argv[2])
with Client(scheduler_file=path, timeout=120) as client:
    client.wait_for_workers(n, timeout=900)
print(json.load(open(path))["address"])
PY
)

# cluster kind 'address' picks DASK_SCHEDULER_ADDRESS up (see bioxen_dask.cluster).
bioxen-dask run "$PIPELINE" --scheduler "$DASK_SCHEDULER_ADDRESS"
