#!/usr/bin/env bash
# alob-train on a lent GPU: (1) model speed on synthetic in-memory batches, baseline vs ALOB per
# backbone, bf16 autocast + channels_last; (2) the whole pipeline (shards -> DataLoader workers ->
# GPU) on real or synthetic shards, read from the run's run.json summary.
#   bash bench/train_gpu.sh [SHARDS_DIR]     # without SHARDS_DIR, 20,000 synthetic JPEG samples are written to /tmp
# Target (issue 5): >= 5,000 samples/s for ALOB-ResNet18 at 112x96 on one H100.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/alob-bench-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

python bench/train.py --device cuda --amp bf16 --batch-size 512 --backbones resnet18,lightcnn9,iresnet18,iresnet50 \
    --variants baseline,alob --steps 20 --warmup 5 --repeats 3 --json "$OUT/model.json"

SHARDS=${1:-$OUT/synthetic}
if [ ! -d "$SHARDS/shards" ]; then
python - "$SHARDS" <<'PY'
import io, sys
from pathlib import Path
import numpy as np, pandas as pd, webdataset as wds
from PIL import Image
out = Path(sys.argv[1]); (out / "shards").mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0); classes, per_class, n = 1000, 20, 0
sinks = [wds.TarWriter(str(out / "shards" / f"train-{k:06d}.tar")) for k in range(16)]
for label in range(classes):
    for i in range(per_class):
        buf = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (112, 96, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        sinks[n % 16].write({"__key__": f"c{label}/{i}", "jpg": buf.getvalue(), "json": {"label": label, "identity": f"c{label}"}}); n += 1
for s in sinks: s.close()
pd.DataFrame({"label": range(classes), "identity": [f"c{c}" for c in range(classes)], "count": per_class}).to_csv(out / "classes.csv", index=False)
PY
fi
WORKERS=$(( $(nproc) - 2 ))
rm -rf "$OUT/run"
python -m alob_train.cli --data "$SHARDS" --out "$OUT/run" --backbone resnet18 --variant alob --batch-size 512 \
    --max-steps 150 --workers "$WORKERS" --amp bf16 --log-every 10 --no-tensorboard --quiet
python - "$OUT/run" <<'PY'
import json, sys, pandas as pd
run = sys.argv[1]
m = pd.read_csv(f"{run}/metrics.csv"); m = m[m.phase == "train"]
print("pipeline samples/s (median of logged windows after the first):", m.samples_per_s.iloc[1:].median())
print(json.dumps(json.load(open(f"{run}/run.json"))["summary"], indent=1))
PY
