#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, then run the LFW fold experiment
# (align -> LFW-OCC-2.0/3.0 and LFW-Masked -> train baseline and ALOB -> evaluate -> report).
# Arguments go to alob-pipeline, e.g. --quick --data /data/lfw; see alob-pipeline --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/alob-pipeline "$@"
