#!/usr/bin/env bash
# Prepare .gpu/, the folder a GPU machine call carries (git-ignored; at most about 60 MiB, since a
# call moves 64 MiB of working tree in all), for scripts/gpu-round.sh:
#   .gpu/whl/            wheels (CPython 3.12, manylinux) of what a bare PyTorch image lacks
#   .gpu/aligned.tar.gz  an aligned LFW (align-faces output) with its crops re-encoded as JPEG
#                        quality Q (default 85) so that all 13,233 fit; manifest.csv unchanged
#   .gpu/raw.tar.gz      every 26th photo of LFW as it is (509 files, in identity folders), for the alignment benchmarks
#   .gpu/pairs.txt       LFW's View-2 pair list
#
#   bash scripts/gpu-bundle.sh LFW_DIR ALIGNED_DIR [Q]     # LFW_DIR: lfw-deepfunneled/ and pairs.txt
set -euo pipefail
cd "$(dirname "$0")/.."
LFW=${1:?usage: scripts/gpu-bundle.sh LFW_DIR ALIGNED_DIR [QUALITY]}
ALIGNED=${2:?usage: scripts/gpu-bundle.sh LFW_DIR ALIGNED_DIR [QUALITY]}
QUALITY=${3:-85}
PY=${PYTHON:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/whl
grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
    -d .gpu/whl webdataset==1.0.2 braceexpand==0.1.7 facenet-pytorch==2.6.0 simplejpeg==1.9.0 ttach==0.0.3
"$PY" -m pip wheel -q --no-deps -w .gpu/whl grad-cam==1.5.7     # published as source only; pure Python

nice "$PY" - "$LFW" "$ALIGNED" "$QUALITY" <<'PY'
"""Re-encode the aligned crops and pack them, and a sample of raw photos, as plain tars."""
import io, sys, tarfile
from pathlib import Path

import cv2
import numpy as np

lfw, aligned, quality = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))

with tarfile.open(".gpu/aligned.tar.gz", "w:gz", compresslevel=6) as tar:
    for path in sorted(aligned.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        add(tar, f"aligned/{path.relative_to(aligned)}", data)
photos = sorted((lfw / "lfw-deepfunneled").rglob("*.jpg"))
with tarfile.open(".gpu/raw.tar.gz", "w:gz", compresslevel=6) as tar:
    for path in photos[::26]:
        add(tar, f"raw/{path.parent.name}/{path.name}", path.read_bytes())
PY
cp "$LFW/pairs.txt" .gpu/pairs.txt
size=$(du -sb .gpu | cut -f1)
echo ".gpu: $((size / 1048576)) MiB"; ls -la .gpu .gpu/whl
if [ "$size" -gt $((60 * 1048576)) ]; then
    echo "too large for one call: lower the quality (third argument)" >&2; exit 1
fi
