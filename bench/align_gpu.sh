#!/usr/bin/env bash
# align-faces on a lent GPU: images/s on 400 LFW originals (all 250x250: equal-size batches) and on
# 400 mixed-size copies (random non-square crops rescaled by 0.6-1.8, made by bench/align_sizes.py),
# for the cuda defaults (in-process, decode threads, batches across sizes) and with each of them
# turned off, and the landmark agreement of the batching modes on the GPU. Meant to take under a minute.
#   bash bench/align_gpu.sh [LFW_DIR]     # default: $ALOB_DATA/lfw/lfw-deepfunneled
# LFW must be on the machine: carry a folder of LFW images (any identity-folder tree of
# 250x250 photos, at least 400; about 7 MB) and pass it as LFW_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LFW=${1:-${ALOB_DATA:-../shared/data}/lfw/lfw-deepfunneled}
if [ ! -d "$LFW" ]; then echo "LFW not found at $LFW: pass the folder as the first argument" >&2; exit 2; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
THREADS=$(nproc)
timeout 75 python bench/align_threads.py --lfw-dir "$LFW" --device cuda --in-process --images 400 --repeats 1 \
    --workers 0 --configs "cuda defaults=;batch 64=--batch-size 64;no threads=--decode-threads 0;\
equal-size batches=--no-batch-across-sizes;neither (the cpu path)=--decode-threads 0 --no-batch-across-sizes;\
cpu defaults, cpu=--device cpu --decode-threads 0 --no-batch-across-sizes --workers $THREADS"
timeout 40 python bench/align_sizes.py --lfw-dir "$LFW" --device cuda --images 200 --repeats 1
