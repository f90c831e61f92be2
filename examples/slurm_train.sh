#!/bin/bash
# Data-parallel IC training on a Slurm cluster: one torchrun agent per node, one rank per core group.
#
#   sbatch --nodes=64 examples/slurm_train.sh 'data/prior-*.h5' runs/tau.ckpt
#
# Submitting the same command again after a failure or a time limit resumes from the checkpoint.
# Every rank trains on its own shard of the trace files (written by `ppx prior --out`). Rank 0
# alone writes the checkpoint and, on resume, reads it and sends it to the other ranks; as
# torchrun may place rank 0 on any node, keep the checkpoint on a file system all nodes see.
#SBATCH --job-name=ppx-ic
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

DATA=${1:?usage: sbatch --nodes=N examples/slurm_train.sh 'TRACE FILES GLOB' CHECKPOINT}
CHECKPOINT=${2:?usage: sbatch --nodes=N examples/slurm_train.sh 'TRACE FILES GLOB' CHECKPOINT}
RANKS_PER_NODE=${RANKS_PER_NODE:-8}            # processes per node, each with its own torch thread
BATCH_PER_RANK=${BATCH_PER_RANK:-64}
NUM_TRACES=${NUM_TRACES:-100000000}

export OMP_NUM_THREADS=$(( SLURM_CPUS_PER_TASK / RANKS_PER_NODE ))
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
GLOBAL_BATCH=$(( SLURM_NNODES * RANKS_PER_NODE * BATCH_PER_RANK ))
RESUME=()
[ -f "$CHECKPOINT" ] && RESUME=(--resume)

# torchrun's c10d rendezvous on the first node sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
# for every process; `ppx train` (here `python -m inference train`) joins the group as that rank.
# --max-restarts 0: a failed rank ends the job, and the next submission resumes it.
srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" --nproc-per-node "$RANKS_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$HEAD_NODE:29500" --rdzv-id "$SLURM_JOB_ID" --max-restarts 0 \
    -m inference train \
        --dataset "$DATA" --out "$CHECKPOINT" "${RESUME[@]}" \
        --num-traces "$NUM_TRACES" --batch-size "$GLOBAL_BATCH" \
        --optimizer lamb --learning-rate 1e-3 --reference-batch-size 64 --lr-scaling sqrt --warmup-steps 500 \
        --checkpoint-every 600 --collective-timeout 600 --threads "$OMP_NUM_THREADS" --quiet --json
