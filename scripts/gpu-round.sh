#!/usr/bin/env bash
# One call on a lent GPU machine (a call may run 10 minutes): the GPU throughput table (about
# 3 minutes), then the decisive ALOB-vs-baseline comparison (scripts/gpu-decisive.sh) for the rest
# of the call. Everything lands in $OUT (bench.md, decisive.log, comparison.md). The comparison
# resumes where it stopped: while the machine is still warm, the same command again continues it
# (the benchmarks are then skipped: SKIP_BENCH=1).
#
#   here:    bash scripts/gpu-bundle.sh LFW_DIR ALIGNED_DIR        # prepares .gpu/ (about 36 MiB)
#   device:  bash scripts/gpu-round.sh                             # carry: .gpu
#
# BUDGET (seconds, default 570) bounds the whole call; the comparison gets what the benchmarks leave.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
WORK=${WORK:-/tmp/alob-gpu}
BUDGET=${BUDGET:-570}
mkdir -p "$OUT" "$WORK" /tmp/bin
[ -d .gpu/whl ] || { echo "no .gpu/: run scripts/gpu-bundle.sh here first and carry .gpu" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU visible" >&2; exit 1; }

# Packages the image lacks (wheels), the project's commands as shims, the data.
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/bin:$PATH" PYTHONUNBUFFERED=1
for entry in align-faces=alignment.cli occgen=occgen.cli alob-train=alob_train.cli alob-eval=alob_eval.cli \
             alob-pipeline=alob_experiment.cli; do
    printf '#!/usr/bin/env bash\nexec python3 -c "from %s import main; main()" "$@"\n' "${entry#*=}" > "/tmp/bin/${entry%%=*}"
    chmod +x "/tmp/bin/${entry%%=*}"
done
[ -f "$WORK/aligned/manifest.csv" ] || tar xzf .gpu/aligned.tar.gz -C "$WORK"
[ -d "$WORK/raw" ] || tar xzf .gpu/raw.tar.gz -C "$WORK"
cp .gpu/pairs.txt "$WORK/aligned/pairs.txt"
left() { echo $(( BUDGET - SECONDS )); }
CORES=$(nproc)

if [ -z "${SKIP_BENCH:-}" ]; then
    {
    echo "# GPU round $(date -u +%FT%TZ): $(nvidia-smi --query-gpu=name --format=csv,noheader), $CORES cores"
    echo; echo "## Training step, model only (bf16, channels_last, batch 512, in-memory batches)"; echo
    timeout 60 python3 bench/train.py --device cuda --amp bf16 --batch-size 512 --classes 10572 \
        --backbones resnet18,iresnet50 --variants baseline,alob --steps 10 --warmup 3 --repeats 3 --peak-tflops 400
    echo; echo "## The same with torch.compile (ResNet18)"; echo
    timeout 100 python3 bench/train.py --device cuda --amp bf16 --batch-size 512 --classes 10572 \
        --backbones resnet18 --variants baseline,alob --compile on --steps 10 --warmup 3 --repeats 3 --peak-tflops 400
    echo; echo "## Input pipeline from shards, $(( CORES - 2 )) DataLoader workers (alob-train, ALOB-ResNet18, bf16, batch 512)"; echo
    [ -d "$WORK/shards/shards" ] || occgen build --source folder --data "$WORK/aligned" --out "$WORK/shards" \
        --clean-ratio 1:0 --workers "$CORES" --quiet > /dev/null
    for mode in "occluded on the fly=--occlude" "occluded and masked on the fly=--occlude --kind mixed --mask-fraction 0.5" \
                "clean, decoded and jittered on the GPU=--augment-on device"; do
        rm -rf "$WORK/run"
        # shellcheck disable=SC2086
        timeout 45 alob-train --data "$WORK/shards" --out "$WORK/run" --backbone resnet18 --variant alob \
            --batch-size 512 --max-steps 40 --workers $(( CORES - 2 )) --amp bf16 --log-every 10 \
            --no-tensorboard --quiet ${mode#*=} > /dev/null 2>&1
        python3 - "$WORK/run" "${mode%%=*}" <<'PY'
import sys
import pandas as pd
try:
    m = pd.read_csv(f"{sys.argv[1]}/metrics.csv")
    rate = m[m.phase == "train"].samples_per_s.iloc[1:].median()
except (OSError, AttributeError, IndexError, KeyError):
    rate = float("nan")
print(f"| {sys.argv[2]} | {rate:.0f} samples/s (median of the logged windows after the first) |")
PY
    done
    echo; echo "## align-faces --device cuda"; echo
    timeout 120 bash bench/align_gpu.sh "$WORK/raw"
    } 2>&1 | tee "$OUT/bench.md"
fi

echo "comparison: $(left) s left in this call" | tee -a "$OUT/decisive.log"
if [ "$(left)" -gt 60 ]; then
    ALIGNED="$WORK/aligned" WORK="$WORK/decisive" timeout "$(( $(left) - 20 ))" \
        bash scripts/gpu-decisive.sh "$WORK/aligned" 2>&1 | tail -c 20000 >> "$OUT/decisive.log"
fi
cp "$WORK/decisive/report/comparison.md" "$OUT/" 2>/dev/null || echo "the comparison is not finished: run again" | tee -a "$OUT/decisive.log"
