#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in .venv: the project with its
# test, fast, dlib, reference and onnx extras, then facenet-pytorch without its outdated pins (see
# README, "Set up"). By default every package is installed at the version the test suite passed
# with (constraints.txt, written by scripts/freeze-constraints.py) and nothing is done when
# setup.cfg, constraints.txt and this script are unchanged since the last set-up.
#   --latest   the newest versions instead (no constraints; upgrades an existing .venv), always run
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
case "${1:-}" in
    "") latest=0 ;;
    --latest) latest=1 ;;
    *) echo "usage: bash scripts/setup.sh [--latest]" >&2; exit 2 ;;
esac
stamp=.venv/.alob-setup
if [ "$latest" = 1 ]; then
    pins=(--upgrade --upgrade-strategy eager)
    want=latest
else
    pins=(-c constraints.txt)
    want="$(cat setup.cfg constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        exit 0
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q "${pins[@]}" -e '.[test,fast,dlib,reference,onnx]'
.venv/bin/pip install -q "${pins[@]}" --no-deps facenet-pytorch
echo "$want" > "$stamp"
