#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in .venv: pinned torch and
# torchvision, the project with its test, fast, dlib and reference extras, then facenet-pytorch without
# its outdated pins (see README, "Set up"). Skips the installs when nothing they depend on changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp=.venv/.alob-setup
want="$(cat setup.cfg scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q 'torch==2.14.1' 'torchvision==0.29.1'
.venv/bin/pip install -q -e '.[test,fast,dlib,reference]'
.venv/bin/pip install -q --no-deps 'facenet-pytorch==2.6.0'
echo "$want" > "$stamp"
